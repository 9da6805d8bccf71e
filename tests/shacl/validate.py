"""Validates RDF against SHACL shapes with pySHACL and prints the outcome as JSON.

    validate.py --shapes A.ttl [--shapes B.ttl ...] DATA [DATA ...]
    validate.py --isomorphic A B [C ...]

The first form loads every shapes file into one shapes graph and validates each data file
(its format from the extension: .ttl, .jsonld, .rdf, .nt) on its own; it prints
{"files": {DATA: {"conforms": bool, "results": [...]}}}, each result with its severity,
focus node, path, constraint and message. The second checks that the files hold the same
graph (blank nodes compared up to renaming) and prints {"isomorphic": bool, "triples": [...]}.
"""

import argparse
import json
import sys

from pyshacl import validate
from rdflib import Graph, Namespace
from rdflib.compare import isomorphic
from rdflib.namespace import RDF

SH = Namespace("http://www.w3.org/ns/shacl#")
FORMATS = {"ttl": "turtle", "jsonld": "json-ld", "rdf": "xml", "nt": "nt"}


def load(path):
    g = Graph()
    g.parse(path, format=FORMATS[path.rsplit(".", 1)[-1]])
    return g


def results(report):
    out = []
    for r in report.subjects(RDF.type, SH.ValidationResult):
        def one(p):
            v = report.value(r, p)
            return None if v is None else str(v)
        out.append({
            "severity": (one(SH.resultSeverity) or "").rsplit("#", 1)[-1],
            "focus": one(SH.focusNode),
            "path": one(SH.resultPath),
            "constraint": (one(SH.sourceConstraintComponent) or "").rsplit("#", 1)[-1],
            "message": one(SH.resultMessage),
        })
    out.sort(key=lambda x: json.dumps(x, sort_keys=True))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", action="append", default=[])
    parser.add_argument("--isomorphic", action="store_true")
    parser.add_argument("data", nargs="+")
    args = parser.parse_args()
    if args.isomorphic:
        graphs = [load(p) for p in args.data]
        same = all(isomorphic(graphs[0], g) for g in graphs[1:])
        print(json.dumps({"isomorphic": same, "triples": [len(g) for g in graphs]}))
        return
    shapes = Graph()
    for path in args.shapes:
        shapes.parse(path, format="turtle")
    files = {}
    for path in args.data:
        conforms, report, _ = validate(load(path), shacl_graph=shapes, inference="none")
        files[path] = {"conforms": bool(conforms), "results": results(report)}
    print(json.dumps({"files": files}))


if __name__ == "__main__":
    sys.exit(main())
