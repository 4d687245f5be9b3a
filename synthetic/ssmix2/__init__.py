"""SS-MIX2: JAHIS HL7 v2.5 messages, the storage layout, the writer and the reader.

The writer turns a world's events into each disclosing facility's standardized storage (and, with the
documents and imaging modules, extended storage and DICOM images); the reader lists and reads anyone's
storage for the gateways.
"""

from synthetic.ssmix2.layout import DATA_TYPES, EXTENDED, IMAGES, NO_ORDER, STORAGE, FileName
from synthetic.ssmix2.reader import DocumentEntry, Entry, Problem, StorageReader, StoredMessage
from synthetic.ssmix2.text import esc, to_jis
from synthetic.ssmix2.writer import Options, StorageWriter, WriteStats

__all__ = [
    "DATA_TYPES",
    "EXTENDED",
    "IMAGES",
    "NO_ORDER",
    "STORAGE",
    "DocumentEntry",
    "Entry",
    "FileName",
    "Options",
    "Problem",
    "StorageReader",
    "StorageWriter",
    "StoredMessage",
    "WriteStats",
    "esc",
    "to_jis",
]
