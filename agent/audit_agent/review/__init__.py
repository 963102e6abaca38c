"""The review loop around a dataset version: reviewer files, agreement between two reviewers, applying
decisions to write the next version, and comparing two audits. Pure computations; files are written by
report/review_outputs.py and io/dataset_writer.py."""
