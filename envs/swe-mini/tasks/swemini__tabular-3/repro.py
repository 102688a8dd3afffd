from tabular import Table, render

table = Table(["cmd", "desc"], [["a|b", "pipe"], ["ls", "list"]])
print(render(table, fmt="markdown"))
print(render(Table(["in|out"], [["x"]]), fmt="markdown").splitlines()[0])
