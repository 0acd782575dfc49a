"""hostside.planner: lifetimes, views, in-place writes, offsets that never overlap while two
tensors are live (property test over random graphs, checked here independently of
planner.check_plan), and arenas as small as the live-bytes bound on MobileNet v1 and v2."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostside import passes, planner
from vc4infer.graph.ir import Graph
from host_graphs import onnx_mobilenet, rand, random_graphs, tflite_mobilenet


def chain(sizes):
    """x -> conv1x1 -> conv1x1 ... with channel counts `sizes` on a 1x4x4 image."""
    g = Graph()
    t = g.add_input("x", (1, 4, 4, sizes[0]), "float32").tensor
    for i, c in enumerate(sizes[1:]):
        w = g.add_constant(f"w{i}", rand(c, 1, 1, g.tensors[t].shape[3]))
        (t,) = g.add_node("conv2d", [t, w], name=f"c{i}")
    g.add_output(t)
    return g


def test_chain_alternates_between_two_buffers():
    g = chain([16, 16, 16, 16, 16])            # every tensor 1*4*4*16*4 = 1024 bytes
    plan = planner.plan_arena(g)
    assert plan.arena_bytes == plan.lower_bound_bytes == 2048
    assert plan.naive_bytes == 5 * 1024
    offs = [plan.offsets[t] for t in ["x", "c0", "c1", "c2", "c3"]]
    assert all(a != b for a, b in zip(offs, offs[1:]))   # neighbours never share bytes


def test_lifetimes_include_graph_input_and_output_ends():
    g = chain([4, 8, 4])
    assert planner.lifetimes(g) == {"x": (-1, 0), "c0": (0, 1), "c1": (1, 2)}


def test_in_place_shares_bytes_only_when_the_input_dies():
    g = Graph()
    g.add_input("x", (1, 8, 8, 4), "float32")
    (a,) = g.add_node("relu", ["x"], name="a")
    (b,) = g.add_node("sigmoid", [a], name="b")        # a dies here: b may take its bytes
    (c,) = g.add_node("relu", [b], name="c")           # b read again below: c may not
    (d,) = g.add_node("add", [b, c], name="d")
    g.add_output(d)
    plan = planner.plan_arena(g, in_place=lambda node: (0,))
    assert plan.offsets[a] == plan.offsets[b]
    assert plan.offsets[c] != plan.offsets[b]
    assert plan.in_place["b"] == a and "c" not in plan.in_place
    planner.check_plan(g, plan)


def test_views_share_their_input_bytes_and_extend_its_life():
    g = Graph()
    g.add_input("x", (1, 2, 2, 8), "float32")
    (a,) = g.add_node("relu", ["x"], name="a")
    (v,) = g.add_node("reshape", [a], shape=(1, 32), name="v")
    (b,) = g.add_node("sigmoid", ["x"], name="b")
    (c,) = g.add_node("reshape", [b], shape=(1, 32), name="c")
    (s,) = g.add_node("add", [v, c], name="s")
    g.add_output(s)
    plan = planner.plan_arena(g)
    assert plan.offsets[v] == plan.offsets[a] and plan.offsets[c] == plan.offsets[b]
    assert plan.buffer_of(a).last == 4          # a's bytes live until the add reads v
    assert plan.naive_bytes == 4 * 128           # x, a, b, s: views cost nothing
    planner.check_plan(g, plan)


def test_check_plan_catches_overlap_and_misalignment():
    from vc4infer.errors import GraphError
    g = chain([16, 16, 16])
    plan = planner.plan_arena(g)
    a, b = plan.buffer_of("x"), plan.buffer_of("c0")       # live together at step 0
    b.offset = a.offset
    with pytest.raises(GraphError, match="share bytes"):
        planner.check_plan(g, plan)
    b.offset = 8
    with pytest.raises(GraphError, match="aligned"):
        planner.check_plan(g, plan)


def test_alignment_and_bad_alignment():
    g = chain([3, 5, 7])                           # sizes not multiples of the alignment
    plan = planner.plan_arena(g, align=256)
    assert all(off % 256 == 0 for off in plan.offsets.values())
    with pytest.raises(ValueError, match="power of two"):
        planner.plan_arena(g, align=48)


def test_weights_plan_is_aligned_and_disjoint():
    blobs = {"a": np.zeros(5, np.float32), "b": 100, "c": np.zeros((3, 3), np.float32)}
    wp = planner.plan_weights(blobs, align=64)
    assert wp.offsets == {"a": 0, "b": 64, "c": 192} and wp.nbytes == 256


# -- property test over random graphs -----------------------------------------------------

def independent_lifetimes(g):
    """(first, last) per activation, recomputed here from the node list."""
    first, last = {s.tensor: -1 for s in g.inputs}, {s.tensor: -1 for s in g.inputs}
    for k, node in enumerate(g.nodes):
        for t in node.inputs:
            if not g.is_constant(t):
                last[t] = max(last[t], k)
        for t in node.outputs:
            first[t] = last[t] = k
    for s in g.outputs:
        last[s.tensor] = len(g.nodes)
    return first, last


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(), st.booleans(), st.sampled_from([4, 64]))
def test_no_two_live_tensors_overlap(g, in_place, align):
    plan = planner.plan_arena(g, in_place=(lambda node: (0,)) if in_place else None, align=align)
    first, last = independent_lifetimes(g)
    views = {n.outputs[0]: n.inputs[0] for n in g.nodes if n.op == "reshape"}
    shared = dict(views)
    shared.update({n_out: x for n_out, x in
                   ((n.outputs[0], plan.in_place[n.name]) for n in g.nodes if n.name in plan.in_place)})

    def root(t):
        while t in shared:
            t = shared[t]
        return t
    names = list(first)
    for i, t in enumerate(names):
        assert plan.offsets[t] % align == 0
        assert plan.offsets[t] + g.tensors[t].nbytes <= plan.arena_bytes
        for u in names[i + 1:]:
            if root(t) == root(u):
                assert plan.offsets[t] == plan.offsets[u]
                continue
            live_together = first[t] <= last[u] and first[u] <= last[t]
            bytes_overlap = (plan.offsets[t] < plan.offsets[u] + g.tensors[u].nbytes and
                             plan.offsets[u] < plan.offsets[t] + g.tensors[t].nbytes)
            assert not (live_together and bytes_overlap), (t, u)
    # an in-place output only takes bytes whose tensor is read for the last time by its writer
    for n in g.nodes:
        if n.name in plan.in_place:
            x = plan.in_place[n.name]
            assert x in n.inputs and g.tensors[x].nbytes == g.tensors[n.outputs[0]].nbytes
            assert all(last[t] <= g.nodes.index(n) for t in plan.buffer_of(x).tensors
                       if t != n.outputs[0] and first[t] <= g.nodes.index(n))
    assert plan.lower_bound_bytes <= plan.arena_bytes
    assert max(g.tensors[t].nbytes for t in names) <= plan.arena_bytes
    planner.check_plan(g, plan)


# -- MobileNets ------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["onnx", "tflite"])
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("alpha,size", [(0.25, 96), (1.0, 224)])
def test_mobilenet_arena_is_tight(source, version, alpha, size):
    g = onnx_mobilenet(version, alpha, size)[0] if source == "onnx" else \
        tflite_mobilenet(version, alpha, size)[0]
    g = passes.optimise(g)
    plan = planner.plan_arena(g)
    planner.check_plan(g, plan)
    assert plan.arena_bytes == plan.lower_bound_bytes      # nothing better exists
    # every step needs its inputs and its output at once; v1 is a chain, so the arena is
    # exactly the largest such step (1.0/224: the 1x1 conv 112x112x32 -> 112x112x64,
    # 4 * 112 * 112 * 96 = 4,816,896 bytes); v2 also keeps each block's input alive for its
    # residual add
    step_bytes = max(sum(g.tensors[t].nbytes for t in dict.fromkeys(n.inputs + n.outputs)
                         if not g.is_constant(t)) for n in g.nodes)
    if version == "v1":
        assert plan.arena_bytes == step_bytes
    else:
        assert plan.arena_bytes >= step_bytes
    assert plan.arena_bytes * 3 < plan.naive_bytes


# -- pixel pitch ----------------------------------------------------------------------------

@pytest.mark.parametrize("channels,pitch", [
    (512, 2112),      # 2048 B = 32 lines: padded to 33
    (128, 576),       # 8 lines -> 9
    (1024, 4160),     # 64 lines -> 65
    (576, 2368),      # 36 lines -> 37
    (32, 192),        # 2 lines -> 3
    (16, 64),         # 1 line: odd already
    (144, 576),       # 9 lines: odd already
    (24, 96),         # not a whole number of lines
])
def test_pixel_pitch_spreads_neighbouring_pixels_over_the_l1_sets(channels, pitch):
    assert planner.pixel_pitch_bytes((1, 7, 7, channels), 4) == pitch
    # the TMU L1: 4 KiB direct-mapped, 64-byte lines; the two QPUs sharing a TMU gather one
    # channel of 32 neighbouring pixels: each in its own set (where a pixel is whole lines)
    sets = {(r * pitch // 64) % 64 for r in range(32)}
    assert len(sets) == 32 or pitch % 64


def test_pitch_only_where_allowed_and_never_for_views():
    g = chain([512, 512, 512])
    plan = planner.plan_arena(g, pitched=lambda t: t != "c1")
    assert plan.pitches == {"x": 2112, "c0": 2112, "c1": 2048}
    assert plan.nbytes["x"] == 16 * 2112 and plan.nbytes["c1"] == 16 * 2048
    flat = Graph()
    x = flat.add_input("x", (1, 4, 4, 512), "float32").tensor
    (y,) = flat.add_node("reshape", [x], shape=(1, 8192))
    flat.add_output(y)
    plan = planner.plan_arena(flat, pitched=lambda t: True)
    assert plan.pitches["x"] == 2048                    # a view's bytes stay dense
    assert planner.pixel_pitch_bytes((1, 4, 4, 512), 1) == 512   # uint8: no QPU kernel reads it


def test_halo_is_reserved_with_its_tensor_and_shared_with_no_in_place_write():
    g = chain([3, 8, 8])
    plan = planner.plan_arena(g, in_place=lambda node: (0,), halos={"x": (0, 0, 1, 1)})
    assert plan.halos == {"x": (0, 0, 1, 1)}
    assert plan.nbytes["x"] == 1 * 5 * 5 * 12            # (4 + 1) x (4 + 1) pixels of 3 floats
    assert plan.in_place.get("c0") is None                 # c0 may not write over x's halo
    planner.check_plan(g, plan)
    with pytest.raises(Exception, match="halo needs an NHWC tensor"):
        flat = Graph()
        x = flat.add_input("x", (1, 4, 4, 8), "float32").tensor
        (y,) = flat.add_node("reshape", [x], shape=(1, 128))
        flat.add_output(y)
        planner.plan_arena(flat, halos={"x": (1, 1, 1, 1)})
