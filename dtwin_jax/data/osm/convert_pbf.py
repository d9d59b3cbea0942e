"""One-off converter: the drivable streets of an OpenStreetMap ``.osm.pbf`` -> a small ``.npz``.

A minimal PBF reader (protobuf wire format + zlib, standard library only), a filter for
vehicle-usable ``highway=*`` ways, an equirectangular projection to local metres around the
chosen centre, Douglas-Peucker simplification of each street between junctions, clipping to
a square and the largest connected component (``maps.crop_edges``). Writes
``nodes [N, 2] float32`` (metres, origin at the square's lower-left corner),
``edges [E, 2] int32`` (undirected, once), ``bounds [2, 2]`` (the square), ``name``,
``source`` and ``license``. Run as a script::

    python dtwin_jax/data/osm/convert_pbf.py IN.osm.pbf OUT.npz --name helsinki --size 1500
"""

from __future__ import annotations

import argparse
import os
import struct
import zlib

import numpy as np

from dtwin_jax.twins.map2traj.maps import crop_edges

DRIVABLE = {
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
    "living_street", "road", "motorway_link", "trunk_link", "primary_link", "secondary_link",
    "tertiary_link",
}  # fmt: skip
EARTH_RADIUS_M = 6_371_008.8


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, value): int for varints, bytes for length-delimited fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, value


def _packed(buf: bytes, signed: bool = False) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append((value >> 1) ^ -(value & 1) if signed else value)
    return out


def _blocks(path: str):
    """Yield the decompressed PrimitiveBlocks (OSMData blobs) of a .osm.pbf file."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        header = dict(_fields(data[pos + 4 : pos + 4 + size]))
        pos += 4 + size
        blob = dict(_fields(data[pos : pos + header[3]]))
        pos += header[3]
        if header[1] != b"OSMData":
            continue
        if 1 in blob:
            yield blob[1]
        elif 3 in blob:
            yield zlib.decompress(blob[3])
        else:
            raise ValueError("only raw and zlib-compressed PBF blobs are supported")


def read_pbf(path: str) -> tuple[dict[int, tuple[float, float]], list[list[int]]]:
    """Return (node id -> (lon, lat) in degrees, node-id lists of the drivable ways)."""
    coords: dict[int, tuple[float, float]] = {}
    ways: list[list[int]] = []
    for block in _blocks(path):
        fields = list(_fields(block))
        strings = [s for f, v in fields if f == 1 for g, s in _fields(v) if g == 1]
        meta = {f: v for f, v in fields if f in (17, 19, 20)}
        gran, lat0, lon0 = meta.get(17, 100), meta.get(19, 0), meta.get(20, 0)
        for group in (v for f, v in fields if f == 2):
            for kind, item in _fields(group):
                if kind == 2:  # DenseNodes: delta-coded ids and coordinates
                    parts = dict(_fields(item))
                    ids = np.cumsum(_packed(parts.get(1, b""), signed=True))
                    lat = np.cumsum(_packed(parts.get(8, b""), signed=True))
                    lon = np.cumsum(_packed(parts.get(9, b""), signed=True))
                    lat = 1e-9 * (lat0 + gran * lat)
                    lon = 1e-9 * (lon0 + gran * lon)
                    coords.update(
                        zip(ids.tolist(), zip(lon.tolist(), lat.tolist(), strict=True), strict=True)
                    )
                elif kind == 1:  # plain Node
                    parts = {f: v for f, v in _fields(item)}
                    unzig = lambda v: (v >> 1) ^ -(v & 1)
                    coords[unzig(parts[1])] = (
                        1e-9 * (lon0 + gran * unzig(parts[9])),
                        1e-9 * (lat0 + gran * unzig(parts[8])),
                    )
                elif kind == 3:  # Way
                    parts = {f: v for f, v in _fields(item)}
                    keys = [strings[k] for k in _packed(parts.get(2, b""))]
                    vals = [strings[k] for k in _packed(parts.get(3, b""))]
                    tags = dict(zip(keys, vals, strict=True))
                    highway = tags.get(b"highway", b"").decode()
                    if (
                        highway in DRIVABLE
                        and tags.get(b"area") != b"yes"
                        and tags.get(b"access") not in (b"no", b"private")
                    ):
                        ways.append(np.cumsum(_packed(parts.get(8, b""), signed=True)).tolist())
    return coords, ways


def _douglas_peucker(pts: np.ndarray, tol: float) -> list[int]:
    """Indices of ``pts`` [P, 2] kept by Douglas-Peucker with tolerance ``tol`` metres."""
    keep, stack = {0, len(pts) - 1}, [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = pts[i], pts[j]
        ab = b - a
        rel = pts[i + 1 : j] - a
        t = np.clip(rel @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
        d = np.linalg.norm(rel - t[:, None] * ab, axis=1)
        k = int(np.argmax(d))
        if d[k] > tol:
            keep.add(i + 1 + k)
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return sorted(keep)


def convert(path: str, size_m: float, center: tuple[float, float] | None, tol_m: float = 4.0):
    """Drivable street graph of ``path`` cropped to a ``size_m`` square around ``center``.

    ``center`` is (lon, lat) in degrees; by default the mean of the drivable nodes.
    Returns ``nodes [N, 2] float32`` metres in [0, size_m]^2 and ``edges [E, 2] int32``
    (clipped to the square, largest connected component).
    """
    coords, ways = read_pbf(path)
    used = sorted({n for w in ways for n in w if n in coords})
    lonlat = np.array([coords[n] for n in used])
    lon_c, lat_c = lonlat.mean(axis=0) if center is None else center
    scale = np.radians(1.0) * EARTH_RADIUS_M
    xy = np.stack([(lonlat[:, 0] - lon_c) * scale * np.cos(np.radians(lat_c)),
                   (lonlat[:, 1] - lat_c) * scale], axis=1)  # fmt: skip
    index = {n: i for i, n in enumerate(used)}
    ways = [[index[n] for n in w if n in index] for w in ways]
    count = np.bincount([n for w in ways for n in w], minlength=len(used))
    ends = {w[k] for w in ways if w for k in (0, -1)}
    edges = []
    for w in ways:  # split at junctions, simplify each piece, keep its straight pieces
        cut = [k for k, n in enumerate(w) if k in (0, len(w) - 1) or count[n] > 1 or n in ends]
        for s, e in zip(cut[:-1], cut[1:], strict=True):
            piece = w[s : e + 1]
            kept = [piece[k] for k in _douglas_peucker(xy[piece], tol_m)]
            edges += list(zip(kept[:-1], kept[1:], strict=True))
    edges = np.array([e for e in edges if e[0] != e[1]])
    half = size_m / 2
    nodes, edges = crop_edges(xy, edges, np.full(2, -half), np.full(2, half))
    return (nodes + half).astype(np.float32), edges.astype(np.int32)


def main() -> None:
    """CLI: the drivable streets of ``PBF`` in a ``--size`` m square around ``--center`` (lon,
    lat in degrees; default the mean drivable node) -> ``OUT.npz``, written atomically."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pbf")
    ap.add_argument("out")
    ap.add_argument("--name", required=True)
    ap.add_argument("--size", type=float, default=1500.0, help="side of the square, metres")
    ap.add_argument("--center", type=float, nargs=2, default=None, metavar=("LON", "LAT"))
    ap.add_argument("--source", default="")
    args = ap.parse_args()
    nodes, edges = convert(args.pbf, args.size, args.center)
    tmp = args.out + ".tmp.npz"
    np.savez_compressed(
        tmp, nodes=nodes, edges=edges, bounds=np.array([[0, 0], [args.size] * 2], np.float32),
        name=np.array(args.name), source=np.array(args.source),
        license=np.array("ODbL-1.0; (c) OpenStreetMap contributors"),
    )  # fmt: skip
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(nodes)} nodes, {len(edges)} edges")


if __name__ == "__main__":
    main()
