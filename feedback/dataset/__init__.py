"""Training data sets from the joined records (the ``dataset`` extra: DuckDB, pyarrow; the
``spark`` extra for ``engine="spark"``). See :mod:`feedback.dataset.query` for the rows and
the layout."""

from .export import ExportResult, Target, export, export_file
from .query import ENGINES, FORMATS, DatasetError, ExportQuery, MissingExtra

__all__ = ["ENGINES", "FORMATS", "DatasetError", "ExportQuery", "ExportResult", "MissingExtra",
           "Target", "export", "export_file"]
