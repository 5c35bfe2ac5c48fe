"""The static census of a compiled stage, without a GPU: the launcher's launches captured and compiled for sm_90
(`sm90`: occupancy, cubin resources, spills), the PTX read as text (`ptx`: instruction counts, loops, math loops),
the SASS of the cubin disassembled and classified (`sass_disasm`, `sass_ops`, `sass_loops`), and the census table
they make (`census`: is the technique really in the code?).
"""
