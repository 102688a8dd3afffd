from tabular import read_csv
from tabular.types import infer_column_type, parse_value

table = read_csv("city,temp\nOslo,-3\nRome,12\n")
print("types:", table.types)
print("temp:", table.column("temp"))
print("infer_column_type(['-3', '12']):", infer_column_type(["-3", "12"]))
print("parse_value('-42'):", repr(parse_value("-42")))
