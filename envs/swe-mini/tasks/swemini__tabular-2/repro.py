from tabular import read_csv

table = read_csv("name,score\nann,3\nbob,\ncid,7\n")
print("ascending: ", table.sort_by("score").column("score"))
print("descending:", table.sort_by("score", descending=True).column("score"))
