"""Proton's intra-kernel timelines, in the same steps as Nsight Compute's: one instrumented launch recorded
(`capture`), Proton's Chrome trace read into the `timeline` table (`read`), figures with their spread derived from
it (`figures`: busy and waiting shares per partition, phase cycles, hidden loads, ping-pong overlap), one case of
`perfmodel collect --timeline` through those steps, judged (`case`), and Nsight Compute's per-instruction stall
samples mapped to partitions (`stalls`).
"""
