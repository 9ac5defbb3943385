"""Datasets: many videos or volumes, several annotators, one shared folder.

Qt-free. A dataset is a folder with a dataset file listing its items and one shared annotation
schema; stages and assignments are append-only records that several processes may write at once.
"""
