"""Reading datasets in every supported format and writing outputs atomically."""
