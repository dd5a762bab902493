"""DST point cleaning in integer working-frame coordinates: the same raw input gives the same cleaned rows in DST's
frame, in original pixels and through the text files; ``semstyle nbb --clean-only``; ``nbb --out`` folders.

Raw input is built so that its cleaning is known: a spread-out core whose pairs all survive, plus pairs the
cleaning must remove (activation < 1; near-duplicates up to exactly +-10 px away, the inclusive edge of DST's
window; one pair whose segment crosses a core segment). On the shared DST example the core is the author's
published cleaned set, brought back into DST's 256 px frame.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from conftest import SHARED, needs_shared
from PIL import Image

from semstyle.cli import main
from semstyle.geometry.keypoints import (
    clean_points,
    read_correspondences,
    write_correspondences,
)
from semstyle.geometry.keypoints.align import apply_similarity, umeyama
from semstyle.geometry.keypoints.clean import (
    clean_grid,
    dst_to_original,
    from_grid,
    greedy_select,
    to_grid,
    working_size,
)
from semstyle.geometry.keypoints.nbb import _to_original

BUNNY = SHARED / "portraits" / "dst_bunny"


def _dst_frame(size_hw, im_size=256):
    """``(H, W)`` of DST's resized image: ``int(side * im_size / long side)`` (PIL sizes in cleanpoints.py)."""
    fac = im_size / max(size_hw)
    return int(size_hw[0] * fac), int(size_hw[1] * fac)


def _raw_set(core_a, core_b, core_act, hw_a, hw_b, seed=0):
    """Core pairs (x, y ints of the working frame) + pairs the cleaning must remove. Returns (ga, gb, act, keep)
    with ``keep`` the row indices of the core in selection order (the core comes first, by activation)."""
    g = torch.Generator().manual_seed(seed)
    # core first, best first: DST's loop, once every activation is zero, re-adds row 0 with activation 0; as a
    # copy of the best pair that artefact changes nothing there
    order = torch.argsort(core_act, descending=True, stable=True)
    core_a, core_b, core_act = core_a[order], core_b[order], core_act[order]
    rows_a, rows_b, acts = [core_a], [core_b], [core_act]
    # near-duplicates of every core point, up to the window edge (exactly 10 px on one or both axes), each with a
    # lower activation than its core point, so that the core point suppresses it
    offsets = torch.tensor([[10, 10], [-10, 10], [10, -10], [-10, -10], [10, 0], [0, -10], [3, -7], [-10, 4]])
    for i in range(len(core_a)):
        near = core_a[i] + offsets
        ok = (near[:, 0] >= 0) & (near[:, 0] < hw_a[1]) & (near[:, 1] >= 0) & (near[:, 1] < hw_a[0])
        near = near[ok]
        rows_a.append(near)
        rows_b.append(
            torch.stack(
                [
                    torch.randint(0, hw_b[1], (len(near),), generator=g),
                    torch.randint(0, hw_b[0], (len(near),), generator=g),
                ],
                1,
            )
        )
        acts.append(core_act[i] - torch.rand(len(near), generator=g, dtype=torch.float64) * 0.3 - 1e-6)
    # activation < 1 anywhere: dropped before the greedy selection
    low = 40
    rows_a.append(
        torch.stack([torch.randint(0, hw_a[1], (low,), generator=g), torch.randint(0, hw_a[0], (low,), generator=g)], 1)
    )
    rows_b.append(
        torch.stack([torch.randint(0, hw_b[1], (low,), generator=g), torch.randint(0, hw_b[0], (low,), generator=g)], 1)
    )
    acts.append(torch.rand(low, generator=g, dtype=torch.float64) * 0.999)
    ga, gb, act = torch.cat(rows_a).long(), torch.cat(rows_b).long(), torch.cat(acts)
    act = torch.round(act * 1e6) / 1e6  # what a '%f' activation file holds
    return ga, gb, act, torch.arange(len(core_a))


def _crossing_pair(ga, gb, act, size_a, size_b, b=10):
    """One extra pair whose content point is more than ``b`` px from every kept one (so the greedy selection keeps
    it) and whose segment (content point -> aligned style point) cuts the longest kept segment at its middle, at
    an angle: DST's crossing removal must delete it."""
    hw_a, hw_b = _dst_frame(size_a), _dst_frame(size_b)
    rows, targets = clean_grid(ga, gb, act, size_a)
    seg = targets.double() - ga[rows].double()
    scale, rot, t = umeyama(ga[rows].float(), gb[rows].float())  # content -> style, as DST fits it
    for k in torch.argsort(seg.norm(dim=1), descending=True)[:10].tolist():
        mid, u = ga[rows[k]].double() + seg[k] / 2, seg[k] / seg[k].norm()
        n = torch.stack([-u[1], u[0]]) + 0.3 * u
        n = n / n.norm()
        for d in range(20, 80, 3):
            for sign in (1, -1):
                p, far = (mid + sign * d * n).round().long(), mid - sign * d * n
                if not (
                    0 <= p[0] < hw_a[1]
                    and 0 <= p[1] < hw_a[0]
                    and 2 < far[0] < hw_a[1] - 2
                    and 2 < far[1] < hw_a[0] - 2
                ):
                    continue
                if ((ga[rows] - p).abs() <= b + 1).all(1).any():
                    continue
                q = apply_similarity(far[None].float(), scale, rot, t)[0].round().long()
                if 0 <= q[0] < hw_b[1] and 0 <= q[1] < hw_b[0]:
                    return p, q
    raise AssertionError("no place for a crossing pair")


def _lattice_core(hw_a, hw_b, n, seed):
    """Spread-out core pairs: content points on a jittered lattice (>= 20 px apart), style points a similarity of
    them plus a displacement of up to 5 px per axis (segments up to 7 px, too short to cross), activations > 1."""
    g = torch.Generator().manual_seed(seed)
    lattice = torch.cartesian_prod(torch.arange(16, hw_a[1] - 16, 26), torch.arange(16, hw_a[0] - 16, 26))
    n = min(n, len(lattice))
    ga = lattice[torch.randperm(len(lattice), generator=g)[:n]] + torch.randint(-3, 4, (n, 2), generator=g)
    moved = ga + torch.randint(-5, 6, (n, 2), generator=g)
    s, th = min(hw_b[0] / hw_a[0], hw_b[1] / hw_a[1]) * 0.9, 0.1
    rot = torch.tensor([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]], dtype=torch.float32)
    centre_a, centre_b = torch.tensor([hw_a[1] / 2, hw_a[0] / 2]), torch.tensor([hw_b[1] / 2, hw_b[0] / 2])
    gb = (((moved - centre_a) * s) @ rot.T + centre_b).round().long()
    act = 1.01 + torch.rand(n, generator=g, dtype=torch.float64) * 2.5
    return ga.long(), gb, torch.round(act * 1e6) / 1e6


def _paths(ga, gb, act, size_a, size_b, tmp_path, im_size=256):
    """Clean one raw set three ways; returns the kept rows (indices into the raw set) of each."""
    ra, rb = ga.float(), gb.float()
    out = {"DST's frame": clean_grid(ga, gb, act, size_a, im_size=im_size)[0].tolist()}  # raw NBB integers
    # the documented path: points in original pixels, mapped the way nbb_keypoints maps them
    oa = _to_original(ra, working_size(size_a, im_size), size_a)
    ob = _to_original(rb, working_size(size_b, im_size), size_b)
    ca, cb, _ = clean_points(oa, ob, act.float(), size_a, size_b, im_size=im_size)
    out["original pixels"] = _rows_of(ca, cb, oa, ob)
    write_correspondences(tmp_path, oa, ob, act)
    fa, fb, fact = read_correspondences(
        tmp_path / "correspondence_A.txt",
        tmp_path / "correspondence_B.txt",
        tmp_path / "correspondence_activation.txt",
        size_a,
        size_b,
    )
    ca, cb, _ = clean_points(fa, fb, fact, size_a, size_b, im_size=im_size)
    out["text files"] = _rows_of(ca, cb, fa, fb)
    return out


def _rows_of(ca, cb, ra, rb):
    """Kept rows are input rows, unchanged: find their indices exactly."""
    both = torch.cat([ra, rb], 1)
    rows = []
    for row in torch.cat([ca, cb], 1):
        hit = (both == row).all(1).nonzero().flatten()
        assert len(hit) >= 1, "clean_points returned a row that is not an input row"
        rows.append(int(hit[0]))
    return rows


# ---- the working grid -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1000, 719), (422, 610), (1296, 511), (256, 184)])
def test_grid_inverts_nbb_mapping_and_files(size, tmp_path):
    """Integer working-frame points survive NBB's per-axis mapping to original pixels and the integer text files;
    a stride-2 cell centre (2j + 0.5) goes to 2j, where DST's NBB puts it."""
    h, w = working_size(size)
    g = torch.Generator().manual_seed(1)
    grid = torch.stack([torch.randint(0, w, (500,), generator=g), torch.randint(0, h, (500,), generator=g)], 1)
    orig = _to_original(grid.float(), (h, w), size)
    assert torch.equal(to_grid(orig, size), grid)
    assert torch.equal(to_grid(from_grid(grid, size), size), grid)
    write_correspondences(tmp_path, orig, orig)
    back, _, _ = read_correspondences(tmp_path / "correspondence_A.txt", tmp_path / "correspondence_B.txt")
    assert torch.equal(to_grid(back, size), grid)
    half = (grid // 2) * 2
    centres = _to_original(half.float() + 0.5, (h, w), size)
    assert torch.equal(to_grid(centres, size), half)


@pytest.mark.slow
def test_semstyle_nbb_fast_output_survives_the_files(tmp_path):
    """semstyle's own NBB (--fast, stride-2 cells) puts its final points on the working grid, so cleaning its raw
    output in memory or after the integer text files keeps the same rows."""
    from conftest import ASSETS

    from semstyle.geometry.keypoints import nbb_keypoints

    found = nbb_keypoints(ASSETS / "content" / "astronaut.jpg", ASSETS / "styles" / "monalisa.jpg", fast=True, size=96)
    pa, pb, act = found
    grid = to_grid(pa, found.size_a, 96)
    assert torch.allclose(from_grid(grid, found.size_a, 96), pa, atol=1e-3)  # on the grid, mapped as NBB maps
    assert (grid % 2 == 0).all()  # stride-2 cells: 2 x cell index, as DST's NBB writes them
    direct = clean_points(pa, pb, act, found.size_a, found.size_b, im_size=96)
    write_correspondences(tmp_path, pa, pb, act)
    fa, fb, fact = read_correspondences(
        tmp_path / "correspondence_A.txt", tmp_path / "correspondence_B.txt", tmp_path / "correspondence_activation.txt"
    )
    via_files = clean_points(fa, fb, fact, found.size_a, found.size_b, im_size=96)
    assert len(direct[0]) >= 5
    assert torch.equal(direct[0].round(), via_files[0]) and torch.equal(direct[1].round(), via_files[1])


def test_dst_output_rule_truncates_by_long_side():
    """cleanpoints.py: ``int(p / (im_size / max(W, H)))`` on both axes."""
    grid = torch.tensor([[132, 24], [183, 255], [0, 0]])
    assert dst_to_original(grid, (450, 450)).tolist() == [[232.0, 42.0], [321.0, 448.0], [0.0, 0.0]]
    fac = 256 / 1000
    assert dst_to_original(grid, (1000, 719)).tolist() == [[float(int(v / fac)) for v in p] for p in grid.tolist()]


# ---- the same cleaning through every path --------------------------------------------------------------------


@pytest.mark.parametrize(
    "size_a, size_b, seed",
    [
        ((1000, 719), (1000, 800), 0),  # per-axis scales 719/184 and 1000/256 (the pair)
        ((1000, 719), (640, 1000), 1),
        ((1296, 511), (550, 470), 2),  # NBB's rounded frame (101 px) is one wider than DST's int() frame (100)
    ],
)
def test_same_rows_through_every_path(size_a, size_b, seed, tmp_path):
    hw_a, hw_b = _dst_frame(size_a), _dst_frame(size_b)
    ca, cb, cact = _lattice_core(hw_a, hw_b, 30, seed)
    ga, gb, act, order = _raw_set(ca, cb, cact, hw_a, hw_b, seed)
    p, q = _crossing_pair(ga, gb, act, size_a, size_b)
    ga, gb = torch.cat([ga, p[None]]), torch.cat([gb, q[None]])
    act = torch.cat([act, torch.tensor([1.0])])
    crossing_row = len(act) - 1
    expected = order.tolist()  # the core, by decreasing activation
    rows, _ = clean_grid(ga, gb, act, size_a)
    assert rows.tolist() == expected and crossing_row not in rows.tolist()
    for path, kept in _paths(ga, gb, act, size_a, size_b, tmp_path).items():
        assert kept == expected, f"{path}: {len(set(kept) & set(expected))}/{len(expected)} rows"


def test_crossing_pair_is_removed_by_crossing_not_spacing():
    """The constructed crossing pair passes the greedy spacing; only the crossing removal takes it out."""
    size_a, size_b = (1000, 719), (1000, 800)
    ca, cb, cact = _lattice_core(_dst_frame(size_a), _dst_frame(size_b), 30, 0)
    ga, gb, act, order = _raw_set(ca, cb, cact, _dst_frame(size_a), _dst_frame(size_b), 0)
    p, q = _crossing_pair(ga, gb, act, size_a, size_b)
    ga, gb, act = torch.cat([ga, p[None]]), torch.cat([gb, q[None]]), torch.cat([act, torch.tensor([1.0])])
    keep = torch.nonzero(act >= 1).flatten()
    assert len(act) - 1 in keep[greedy_select(ga[keep], act[keep])].tolist()
    rows, _ = clean_grid(ga, gb, act, size_a)
    assert len(act) - 1 not in rows.tolist() and rows.tolist() == order.tolist()


# ---- the shared DST example -----------------------------------------------------------------------------------


def _published():
    pa, pb, act = read_correspondences(
        BUNNY / "correspondence_A.txt", BUNNY / "correspondence_B.txt", BUNNY / "correspondence_activation.txt"
    )
    return pa.long(), pb.long(), act


def _dst_inverse(points, size_hw):
    """Working-frame integers k with ``int(k / fac) == p`` (the one that DST's output rule maps to p)."""
    fac = 256 / max(size_hw)
    out = torch.empty_like(points)
    for i, v in enumerate(points.flatten().tolist()):
        hits = [k for k in range(int(v * fac) - 1, int((v + 1) * fac) + 2) if int(k / fac) == v]
        assert len(hits) == 1, f"published point {v} is not DST's output at im_size 256"
        out.view(-1)[i] = hits[0]
    return out


@needs_shared
def test_published_dst_example_through_every_path(tmp_path):
    """DST's published cleaned set of its bunny example + distractors: every path keeps exactly the published rows,
    in order, and DST's output rule gives back the published files' numbers."""
    size_a, size_b = (450, 450), (422, 610)
    pa, pb, pact = _published()
    ga0, gb0 = _dst_inverse(pa, size_a), _dst_inverse(pb, size_b)
    ga, gb, act, order = _raw_set(ga0, gb0, pact.double(), _dst_frame(size_a), _dst_frame(size_b), seed=5)
    assert order.tolist() == list(range(len(pa)))  # the published file is sorted by activation
    p, q = _crossing_pair(ga, gb, act, size_a, size_b)
    ga, gb, act = torch.cat([ga, p[None]]), torch.cat([gb, q[None]]), torch.cat([act, torch.tensor([1.0])])
    expected = list(range(len(pa)))
    for path, kept in _paths(ga, gb, act, size_a, size_b, tmp_path).items():
        assert kept == expected, f"{path}: {len(set(kept) & set(expected))}/{len(expected)} rows"
    rows, _ = clean_grid(ga, gb, act, size_a)
    assert torch.equal(dst_to_original(ga[rows], size_a).long(), pa)
    assert torch.equal(dst_to_original(gb[rows], size_b).long(), pb)


def _write_rc(path, grid):
    path.write_text("".join(f"{y}, {x}\n" for x, y in grid.tolist()))


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@needs_shared
def test_clean_only_reproduces_dst_files(tmp_path, capsys):
    """``nbb --clean-only --frame working`` on raw DST-frame files writes DST's cleaned files byte for byte; the
    published (original-pixel) files are a fixed point of ``--clean-only``."""
    size_a, size_b = (450, 450), (422, 610)
    pa, pb, pact = _published()
    ga, gb, act, _ = _raw_set(
        _dst_inverse(pa, size_a),
        _dst_inverse(pb, size_b),
        pact.double(),
        _dst_frame(size_a),
        _dst_frame(size_b),
        seed=6,
    )
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_rc(raw / "A.txt", ga)
    _write_rc(raw / "B.txt", gb)
    (raw / "act.txt").write_text("".join(f"{v:f}\n" for v in act.tolist()))
    images = [str(BUNNY / "content.jpg"), str(BUNNY / "style.jpg")]
    out = tmp_path / "cleaned"
    assert (
        main(
            [
                "nbb",
                *images,
                "--clean-only",
                str(raw / "A.txt"),
                str(raw / "B.txt"),
                str(raw / "act.txt"),
                "--frame",
                "working",
                "--size",
                "256",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for name in ("correspondence_A.txt", "correspondence_B.txt", "correspondence_activation.txt"):
        assert (out / name).read_bytes() == (BUNNY / name).read_bytes(), name
    assert f"{len(pa)} pairs ({len(act)} before cleaning)" in capsys.readouterr().out
    again = tmp_path / "again"
    assert (
        main(
            [
                "nbb",
                *images,
                "--clean-only",
                str(BUNNY / "correspondence_A.txt"),
                str(BUNNY / "correspondence_B.txt"),
                str(BUNNY / "correspondence_activation.txt"),
                "--out",
                str(again),
            ]
        )
        == 0
    )
    for name in ("correspondence_A.txt", "correspondence_B.txt", "correspondence_activation.txt"):
        assert (again / name).read_bytes() == (BUNNY / name).read_bytes(), name


# ---- the command's folder and errors -----------------------------------------------------------------------


@pytest.fixture
def small_pair(tmp_path):
    """Two small images and a raw correspondence set in their original pixels."""
    Image.new("RGB", (96, 128), (120, 90, 60)).save(tmp_path / "a.png")
    Image.new("RGB", (128, 100), (60, 90, 120)).save(tmp_path / "b.png")
    g = torch.Generator().manual_seed(0)
    pa = torch.stack([torch.randint(0, 96, (60,), generator=g), torch.randint(0, 128, (60,), generator=g)], 1)
    pb = torch.stack([torch.randint(0, 128, (60,), generator=g), torch.randint(0, 100, (60,), generator=g)], 1)
    act = torch.rand(60, generator=g) * 3
    files = tmp_path / "raw"
    write_correspondences(files, pa.float(), pb.float(), act)
    return (
        [
            str(tmp_path / "a.png"),
            str(tmp_path / "b.png"),
            "--clean-only",
            str(files / "correspondence_A.txt"),
            str(files / "correspondence_B.txt"),
            str(files / "correspondence_activation.txt"),
        ],
        pa,
        pb,
        act,
    )


def test_clean_only_matches_clean_points(small_pair, tmp_path):
    args, pa, pb, act = small_pair
    out = tmp_path / "out"
    assert main(["nbb", *args, "--size", "64", "--k", "20", "--out", str(out)]) == 0
    ra, rb, ract = read_correspondences(
        out / "correspondence_A.txt", out / "correspondence_B.txt", out / "correspondence_activation.txt"
    )
    ca, cb, cact = clean_points(pa.float(), pb.float(), act, (128, 96), (100, 128), max_num_points=20, im_size=64)
    assert torch.equal(ra, ca) and torch.equal(rb, cb) and 1 <= len(ra) <= 20
    assert torch.allclose(ract, cact, atol=1e-6)  # '%f' activations
    assert {p.name for p in out.iterdir()} >= {"correspondences.json", "correspondences.png"}
    assert not out.with_name("out.partial").exists()


def test_out_twice_is_refused_and_first_result_kept(small_pair, tmp_path, capsys):
    args = small_pair[0]
    out = tmp_path / "out"
    assert main(["nbb", *args, "--out", str(out)]) == 0
    before = _digest(out)
    capsys.readouterr()
    assert main(["nbb", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "not empty" in err and "\n" not in err and "Traceback" not in err
    assert _digest(out) == before and not out.with_name("out.partial").exists()


def test_write_failure_leaves_no_unmarked_folder(small_pair, tmp_path, capsys, monkeypatch):
    """A full disk while writing (simulated on the second file): one-line error, no DIR, no DIR.partial."""
    import errno

    from semstyle.geometry.keypoints import io

    real, calls = io.atomic_write, []

    def failing(path, write):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(io, "atomic_write", failing)
    out = tmp_path / "full"
    assert main(["nbb", *small_pair[0], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "\n" not in err and str(out) in err
    assert not out.exists() and not out.with_name("full.partial").exists()


@pytest.mark.parametrize(
    "make_out, expect",
    [
        (lambda t: ".", "new folder"),
        (lambda t: "/proc/semstyle-nbb-test", "cannot write in /proc"),
        (lambda t: str(t / "afile" / "sub"), "is not a folder"),
    ],
)
def test_unwritable_out_is_one_line_error(small_pair, tmp_path, capsys, make_out, expect):
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = make_out(tmp_path)
    assert main(["nbb", *small_pair[0], "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and out in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_clean_only_bad_input(small_pair, tmp_path, capsys):
    args = small_pair[0]
    cases = [
        (args[:3] + [args[3]], "takes A.txt B.txt"),
        (args + ["--levels"], "runs no NBB"),
        (args[:2] + ["--frame", "working"], "--frame applies"),
        (args + ["--frame", "working", "--size", "32"], "outside"),  # original-pixel points in a 32 px frame
        (args[:4] + [str(tmp_path / "missing.txt")], "missing.txt"),
    ]
    for argv, expect in cases:
        assert main(["nbb", *argv, "--out", str(tmp_path / "never")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expect in err and "\n" not in err, (argv, err)
    assert not (tmp_path / "never").exists() and not (tmp_path / "never.partial").exists()


@pytest.mark.slow
def test_nbb_clean_equals_raw_files_then_clean_only(tmp_path):
    """``nbb --clean`` and ``nbb --k <all>`` followed by ``--clean-only`` on its files keep the same pairs."""
    from conftest import ASSETS

    images = [str(ASSETS / "content" / "astronaut.jpg"), str(ASSETS / "styles" / "monalisa.jpg")]
    common = ["--fast", "--size", "96", "--quiet"]
    assert main(["nbb", *images, *common, "--clean", "--out", str(tmp_path / "clean")]) == 0
    assert main(["nbb", *images, *common, "--k", "100000", "--out", str(tmp_path / "raw")]) == 0
    raw = tmp_path / "raw"
    assert (
        main(
            [
                "nbb",
                *images,
                "--size",
                "96",
                "--clean-only",
                str(raw / "correspondence_A.txt"),
                str(raw / "correspondence_B.txt"),
                str(raw / "correspondence_activation.txt"),
                "--out",
                str(tmp_path / "later"),
            ]
        )
        == 0
    )
    for name in ("correspondence_A.txt", "correspondence_B.txt", "correspondence_activation.txt"):
        assert (tmp_path / "clean" / name).read_text() == (tmp_path / "later" / name).read_text(), name
    assert len((tmp_path / "clean" / "correspondence_A.txt").read_text().splitlines()) >= 5
