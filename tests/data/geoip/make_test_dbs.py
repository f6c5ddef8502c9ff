#!/usr/bin/env python3
"""Writes small MaxMind DB (.mmdb) files for the geoip filter's tests, from the
format's specification alone (no MaxMind code, no network): an IPv6 search
tree (IPv4 networks under ::/96, where libmaxminddb looks them up), a data
section of the MaxMind DB types, and the metadata.

    tests/data/geoip/make_test_dbs.py DIR

writes DIR/City.mmdb (database_type "GeoLite2-City"), DIR/ASN.mmdb
("GeoLite2-ASN"), DIR/Broken.mmdb (a City database whose metadata lies
about its tree) and DIR/Corrupt.mmdb (sound metadata, records pointing past
the data section). The records are made up; the networks are documentation and
test ranges.
"""
import os
import struct
import sys

# ---- the data section's encoding ----

T_POINTER, T_STRING, T_DOUBLE, T_BYTES, T_U16, T_U32, T_MAP = 1, 2, 3, 4, 5, 6, 7
T_I32, T_U64, T_U128, T_ARRAY, T_BOOL, T_FLOAT = 8, 9, 10, 11, 14, 15


def ctrl(typ, size):
    """The control byte(s) of a value of typ with size (bytes, or items)."""
    if size < 29:
        first, extra = size, b""
    elif size < 285:
        first, extra = 29, bytes([size - 29])
    elif size < 65821:
        first, extra = 30, struct.pack(">H", size - 285)
    else:
        first, extra = 31, struct.pack(">I", size - 65821)[1:]
    if typ <= 7:
        return bytes([(typ << 5) | first]) + extra
    return bytes([first, typ - 7]) + extra


def uint_bytes(v):
    n = (v.bit_length() + 7) // 8
    return v.to_bytes(n, "big") if n else b""


class U:
    """An unsigned integer of a given MaxMind DB type (the metadata's are fixed)."""
    def __init__(self, typ, v):
        self.typ, self.v = typ, v


def enc(v):
    if isinstance(v, U):
        b = uint_bytes(v.v)
        return ctrl(v.typ, len(b)) + b
    if isinstance(v, bool):
        return ctrl(T_BOOL, int(v))
    if isinstance(v, str):
        b = v.encode()
        return ctrl(T_STRING, len(b)) + b
    if isinstance(v, float):
        return ctrl(T_DOUBLE, 8) + struct.pack(">d", v)
    if isinstance(v, int):
        b = uint_bytes(v)
        typ = T_U16 if v < 1 << 16 else T_U32 if v < 1 << 32 else T_U64
        return ctrl(typ, len(b)) + b
    if isinstance(v, dict):
        return ctrl(T_MAP, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    if isinstance(v, list):
        return ctrl(T_ARRAY, len(v)) + b"".join(enc(x) for x in v)
    raise TypeError(type(v))


# ---- the search tree ----

def bits_of(network):
    """(128 address bits as an int, prefix length) of "a.b.c.d/n" or an IPv6 "x::/n"."""
    import ipaddress
    net = ipaddress.ip_network(network)
    if net.version == 4:
        return int(net.network_address), 96 + net.prefixlen
    return int(net.network_address), net.prefixlen


def build(records, database_type, node_count_lie=0, data_lie=0):
    """records: [(network, dict)], disjoint networks. The .mmdb file as bytes."""
    data = b""
    root = [None, None]
    for network, rec in records:
        off = len(data)
        data += enc(rec)
        addr, plen = bits_of(network)
        node = root
        for depth in range(plen):
            bit = (addr >> (127 - depth)) & 1
            if depth == plen - 1:
                node[bit] = ("data", off)
            else:
                if node[bit] is None:
                    node[bit] = [None, None]
                node = node[bit]
    # Number the nodes breadth first; the root is 0.
    order, index, i = [root], {id(root): 0}, 0
    while i < len(order):
        for child in order[i]:
            if isinstance(child, list):
                index[id(child)] = len(order)
                order.append(child)
        i += 1
    n = len(order)

    def record(child):
        if child is None:
            return n                      # no data
        if isinstance(child, list):
            return index[id(child)]
        return n + 16 + child[1] + data_lie  # into the data section
    tree = b"".join(struct.pack(">II", record(a), record(b)) for a, b in order)
    meta = {
        "node_count": U(T_U32, n + node_count_lie),
        "record_size": U(T_U16, 32),
        "ip_version": U(T_U16, 6),
        "database_type": database_type,
        "languages": ["en"],
        "binary_format_major_version": U(T_U16, 2),
        "binary_format_minor_version": U(T_U16, 0),
        "build_epoch": U(T_U64, 1700000000),
        "description": {"en": "sluice test data"},
    }
    return tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + enc(meta)


def names(en):
    return {"en": en, "de": en + " (de)"}


CITY = [
    ("81.2.69.0/24", {
        "city": {"geoname_id": 2643743, "names": names("London")},
        "continent": {"code": "EU", "geoname_id": 6255148, "names": names("Europe")},
        "country": {"geoname_id": 2635167, "iso_code": "GB", "names": names("United Kingdom")},
        "location": {"accuracy_radius": 10, "latitude": 51.5142, "longitude": -0.0931,
                     "time_zone": "Europe/London"},
        "postal": {"code": "EC2V"},
        "subdivisions": [{"geoname_id": 6269131, "iso_code": "ENG", "names": names("England")},
                         {"geoname_id": 3333218, "iso_code": "WLL",
                          "names": names("City of London")}],
    }),
    ("216.160.83.56/29", {
        "city": {"names": names("Milton")},
        "continent": {"code": "NA", "names": names("North America")},
        "country": {"iso_code": "US", "names": names("United States")},
        "location": {"latitude": 47.2513, "longitude": -122.3149, "metro_code": 819,
                     "time_zone": "America/Los_Angeles"},
        "postal": {"code": "98354"},
        "subdivisions": [{"iso_code": "WA", "names": names("Washington")}],
    }),
    # Country level only: no city, no subdivision, no postal code.
    ("2001:db8::/32", {
        "continent": {"code": "OC", "names": names("Oceania")},
        "country": {"iso_code": "AU", "names": names("Australia")},
        "location": {"latitude": -33.494, "longitude": 143.2104,
                     "time_zone": "Australia/Sydney"},
    }),
    # A record without a location: Logstash gives nothing for it.
    ("198.51.100.0/24", {
        "country": {"iso_code": "FR", "names": names("France")},
    }),
]

ASN = [
    ("1.128.0.0/11", {"autonomous_system_number": U(T_U32, 1221),
                      "autonomous_system_organization": "Telstra Pty Ltd"}),
    ("2600:6000::/20", {"autonomous_system_number": U(T_U32, 237),
                        "autonomous_system_organization": "Merit Network Inc."}),
    ("12.81.92.0/22", {"autonomous_system_number": U(T_U32, 7018)}),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for name, body in (("City.mmdb", build(CITY, "GeoLite2-City")),
                       ("ASN.mmdb", build(ASN, "GeoLite2-ASN")),
                       ("Broken.mmdb", build(CITY, "GeoLite2-City", node_count_lie=1 << 20)),
                       ("Corrupt.mmdb", build(CITY, "GeoLite2-City", data_lie=1 << 20))):
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, os.path.join(out, name))


if __name__ == "__main__":
    main()
