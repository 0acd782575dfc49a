"""Instruction words published in the spec (../shared/spec/vc4-qpu-reference.md), written out once
for every test that checks against them.

Appendix A.2: the words py-videocore's assembler produced for its hardware-tested boilerplate
(DMA-load one VPM row, add 1 with an integer add, DMA-store it, raise the host interrupt, end).
vc4infer.selftest.programs carries its own copy for `vc4infer selftest`; a test holds the two
equal."""
APPENDIX_A2_WORDS = [
    0xE0024C6783011000, 0x10020CA715827D80, 0x100209E715CA7D80, 0xE0024C6700101A00,
    0xE0025C6700001A00, 0x1002082715C27D80, 0xD0022C270C9C11C0, 0xE0025C6780904000,
    0x10021CA715827D80, 0x100209E7159F2FC0, 0xD00209A7159C1FC0, 0x30024820959E7000,
    0x10020827009E7000, 0x10020827009E7000,
]
