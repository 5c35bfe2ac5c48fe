"""The Einstein plan as data and its checks: the model file read into frozen dataclasses (`einstein`,
`einstein_file`), the plan's predictions beside each stage's bound (`predictions`), the model held to itself,
physics and published figures (`modelcheck`), which measurement speaks to which constraint (`constraint_map`), and
the success gates judged on the evidence of one or more runs (`gates`, `gate_reading`, `gate_judge`,
`gates_evidence`).
"""
