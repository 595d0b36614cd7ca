"""A Python grpcio client of spark-shuffle-agent, for the interop test and the serve benchmark.

Stubs are generated from proto/ at run time into a temp dir (python3 -m grpc_tools.protoc), so the
test exercises the contract as a non-Node client would compile it.

Usage:
  python_grpc_client.py fetch TARGET APP SHUFFLE MAP START END OUT_FILE [TOKEN]
      Fetches partitions [START, END) into OUT_FILE; prints a JSON line with bytes and chunks.
  python_grpc_client.py parts TARGET APP SHUFFLE MAP OUT_DIR [TOKEN]
      Lists the app's outputs, finds MAP, fetches every partition into OUT_DIR/<r>.bin.
  python_grpc_client.py errors TARGET APP
      Prints the status codes of a few bad requests as JSON.
  python_grpc_client.py bench TARGET APP SHUFFLE MAP START END REPEAT
      Fetches the range REPEAT times, discarding bytes; prints JSON with MiB/s.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import grpc


def load_stubs():
    here = os.path.dirname(os.path.abspath(__file__))
    proto_dir = os.path.normpath(os.path.join(here, "..", "..", "proto"))
    out = tempfile.mkdtemp(prefix="shuffle-agent-py-")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir, "--python_out", out, "--grpc_python_out", out,
         os.path.join(proto_dir, "shuffle_agent.proto")],
        check=True,
    )
    sys.path.insert(0, out)
    import shuffle_agent_pb2  # noqa: E402 (generated above)
    import shuffle_agent_pb2_grpc  # noqa: E402
    return shuffle_agent_pb2, shuffle_agent_pb2_grpc


pb, pb_grpc = load_stubs()

OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]


def stub(target):
    return pb_grpc.ShuffleAgentStub(grpc.insecure_channel(target, options=OPTIONS))


def metadata(token):
    return [("authorization", "Bearer " + token)] if token else None


def fetch(s, app, shuffle, map_id, start, end, sink, token=None):
    req = pb.FetchShuffleBlockRequest(app_id=app, shuffle_id=shuffle, map_id=map_id, start_reduce_id=start, end_reduce_id=end)
    size = 0
    chunks = 0
    for chunk in s.FetchShuffleBlock(req, metadata=metadata(token)):
        if chunk.offset != size:
            raise RuntimeError("chunk at offset %d, expected %d" % (chunk.offset, size))
        if sink is not None:
            sink.write(chunk.data)
        size += len(chunk.data)
        chunks += 1
    return size, chunks


def main(argv):
    cmd = argv[1]
    if cmd == "fetch":
        target, app, shuffle, map_id, start, end, out = argv[2:9]
        token = argv[9] if len(argv) > 9 else None
        with open(out, "wb") as f:
            size, chunks = fetch(stub(target), app, int(shuffle), int(map_id), int(start), int(end), f, token)
        print(json.dumps({"bytes": size, "chunks": chunks}))
    elif cmd == "parts":
        target, app, shuffle, map_id, out_dir = argv[2:7]
        token = argv[7] if len(argv) > 7 else None
        s = stub(target)
        infos = list(s.ListMapOutputs(pb.ListMapOutputsRequest(app_id=app, shuffle_ids=[int(shuffle)]), metadata=metadata(token)))
        info = next(i for i in infos if i.map_id == int(map_id))
        for r in range(len(info.partition_lengths)):
            with open(os.path.join(out_dir, "%d.bin" % r), "wb") as f:
                size, _ = fetch(s, app, int(shuffle), int(map_id), r, r + 1, f, token)
            if size != info.partition_lengths[r]:
                raise RuntimeError("partition %d: %d bytes, listed %d" % (r, size, info.partition_lengths[r]))
        print(json.dumps({"partitions": len(info.partition_lengths), "location": pb.OutputLocation.Name(info.location)}))
    elif cmd == "errors":
        target, app = argv[2:4]
        s = stub(target)
        codes = {}
        for name, req in [
            ("bad_app", pb.FetchShuffleBlockRequest(app_id="../x", shuffle_id=0, map_id=0, start_reduce_id=0, end_reduce_id=1)),
            # C-core refuses metadata above its limit (8 KiB): an id echoed whole would surface as
            # RESOURCE_EXHAUSTED instead of the server's INVALID_ARGUMENT.
            ("long_app", pb.FetchShuffleBlockRequest(app_id="x" * 10000, shuffle_id=0, map_id=0, start_reduce_id=0, end_reduce_id=1)),
            ("negative_map", pb.FetchShuffleBlockRequest(app_id=app, shuffle_id=0, map_id=-1, start_reduce_id=0, end_reduce_id=1)),
            ("unknown_map", pb.FetchShuffleBlockRequest(app_id=app, shuffle_id=0, map_id=123456789, start_reduce_id=0, end_reduce_id=1)),
            ("no_token", None),
        ]:
            try:
                if req is None:
                    s.GetStatus(pb.GetStatusRequest())
                else:
                    for _ in s.FetchShuffleBlock(req):
                        pass
                codes[name] = "OK"
            except grpc.RpcError as e:
                codes[name] = e.code().name
        print(json.dumps(codes))
    elif cmd == "bench":
        target, app, shuffle, map_id, start, end, repeat = argv[2:9]
        s = stub(target)
        total = 0
        began = time.perf_counter()
        for _ in range(int(repeat)):
            size, _ = fetch(s, app, int(shuffle), int(map_id), int(start), int(end), None)
            total += size
        seconds = time.perf_counter() - began
        print(json.dumps({"bytes": total, "seconds": seconds, "mib_per_s": total / 1048576 / seconds}))
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
