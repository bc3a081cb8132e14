"""Constants of Megatron's indexed dataset format (.bin + .idx), shared by its writer and readers.

As megatron-core 0.16's `IndexedDataset` reads it:
  .bin  the token ids of every sequence, back to back, in the index's dtype;
  .idx  b"MMIDIDX\\x00\\x00", u64 version (1), u8 dtype code, u64 sequence count, u64 length of the
        document index, int32 sequence lengths, int64 sequence byte offsets, int64 document
        index (0, then the sequence count at the end of each document). All little-endian.
"""

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}
DTYPE_NAMES = {code: name for name, code in DTYPE_CODES.items()}
DTYPE_SIZES = {"uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "float64": 8, "float32": 4, "uint16": 2}
