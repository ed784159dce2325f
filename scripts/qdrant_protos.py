"""Regenerates crates/ametist-server/proto/*.proto, Qdrant's gRPC API, from the descriptors
the pinned qdrant-client ships (its qdrant_client/grpc/*_pb2.py modules): exactly the
messages and field numbers the client sends.

    target/py-venv/bin/python scripts/qdrant_protos.py crates/ametist-server/proto 1.20.0

(the virtualenv is the Python suite's, made by tests/python/run.sh; the second argument is
the qdrant-client version, written into each file's header).
"""
import sys, importlib
from google.protobuf import descriptor_pb2 as d

T = d.FieldDescriptorProto
SCALAR = {T.TYPE_DOUBLE:"double",T.TYPE_FLOAT:"float",T.TYPE_INT64:"int64",T.TYPE_UINT64:"uint64",T.TYPE_INT32:"int32",
 T.TYPE_FIXED64:"fixed64",T.TYPE_FIXED32:"fixed32",T.TYPE_BOOL:"bool",T.TYPE_STRING:"string",T.TYPE_BYTES:"bytes",
 T.TYPE_UINT32:"uint32",T.TYPE_SFIXED32:"sfixed32",T.TYPE_SFIXED64:"sfixed64",T.TYPE_SINT32:"sint32",T.TYPE_SINT64:"sint64"}
HEADER = """// Qdrant's gRPC API, reconstructed from the descriptors qdrant-client {ver} ships
// (qdrant_client/grpc/{mod}_pb2.py). Origin: the Qdrant project (github.com/qdrant/qdrant,
// lib/api/src/grpc/proto/), Apache License 2.0. Ametist vendors it unchanged because it
// defines the wire protocol: package, service, message names and field numbers must stay
// exactly Qdrant's, so that Qdrant's clients work with `prefer_grpc`. Do not edit by hand:
// regenerate with scripts/qdrant_protos.py.
"""

def tname(f, pkg):
    if f.type in SCALAR: return SCALAR[f.type]
    n = f.type_name
    if n.startswith("." + pkg + "."): return n[len(pkg) + 2:]
    return n[1:] if n.startswith(".") else n

def field(f, pkg, msg, ind, in_oneof=False):
    if f.type == T.TYPE_MESSAGE and f.label == T.LABEL_REPEATED:
        entry = next((m for m in msg.nested_type if m.options.map_entry and "." + m.name == "." + f.type_name.split(".")[-1]), None)
        if entry:
            k, v = entry.field
            return f"{ind}map<{tname(k,pkg)}, {tname(v,pkg)}> {f.name} = {f.number};"
    lab = ""
    if f.label == T.LABEL_REPEATED: lab = "repeated "
    elif f.proto3_optional: lab = "optional "
    opts = " [deprecated = true]" if f.options.deprecated else ""
    return f"{ind}{lab}{tname(f,pkg)} {f.name} = {f.number}{opts};"

def enum(e, ind):
    out = [f"{ind}enum {e.name} {{"]
    for v in e.value:
        opts = " [deprecated = true]" if v.options.deprecated else ""
        out.append(f"{ind}  {v.name} = {v.number}{opts};")
    out.append(f"{ind}}}")
    return out

def message(m, pkg, ind):
    out = [f"{ind}message {m.name} {{"]
    i2 = ind + "  "
    for e in m.enum_type: out += enum(e, i2)
    for n in m.nested_type:
        if not n.options.map_entry: out += message(n, pkg, i2)
    done = set()
    for f in m.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            oi = f.oneof_index
            if oi in done: continue
            done.add(oi)
            out.append(f"{i2}oneof {m.oneof_decl[oi].name} {{")
            for g in m.field:
                if g.HasField("oneof_index") and g.oneof_index == oi and not g.proto3_optional:
                    out.append(field(g, pkg, m, i2 + "  ", True))
            out.append(f"{i2}}}")
        else:
            out.append(field(f, pkg, m, i2))
    out.append(f"{ind}}}")
    return out

def main(outdir, ver):
    for mod in ["json_with_int","qdrant_common","collections","points","collections_service","points_service","snapshots_service","qdrant"]:
        m = importlib.import_module(f"qdrant_client.grpc.{mod}_pb2")
        fd = d.FileDescriptorProto.FromString(m.DESCRIPTOR.serialized_pb)
        pkg = fd.package
        out = [HEADER.format(ver=ver, mod=mod).rstrip(), "", f'syntax = "{fd.syntax or "proto3"}";', "", f"package {pkg};", ""]
        for dep in fd.dependency: out.append(f'import "{dep}";')
        if fd.dependency: out.append("")
        if fd.options.HasField("csharp_namespace"): out.append(f'option csharp_namespace = "{fd.options.csharp_namespace}";\n')
        for e in fd.enum_type: out += enum(e, ""); out.append("")
        for msg in fd.message_type: out += message(msg, pkg, ""); out.append("")
        for s in fd.service:
            out.append(f"service {s.name} {{")
            for meth in s.method:
                cs = "stream " if meth.client_streaming else ""
                ss = "stream " if meth.server_streaming else ""
                out.append(f"  rpc {meth.name}({cs}{tname(type('x',(),{'type':T.TYPE_MESSAGE,'type_name':meth.input_type})(),pkg)}) returns ({ss}{tname(type('x',(),{'type':T.TYPE_MESSAGE,'type_name':meth.output_type})(),pkg)});")
            out.append("}")
            out.append("")
        open(f"{outdir}/{fd.name}", "w").write("\n".join(out).rstrip() + "\n")
        print(fd.name, pkg, [s.name for s in fd.service], list(fd.dependency))

main(sys.argv[1], sys.argv[2])
