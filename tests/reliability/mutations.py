"""Does each fault test fail when the protection it checks is removed? (Not a test itself.)

    .venv/bin/python -m tests.reliability.mutations [NAME ...]

For each mutation: copy src/ to a temporary folder, take one protection out of the copy (an
exact text replacement; a missing target is reported, not guessed), and run the tests that
check it against the copy (PYTHONPATH puts it first, for the test process and for the servers
and ingests it starts). A protection is shown to matter when its test fails on the mutant.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T = "tests/reliability/"
HEAD_431 = (T + "test_hostile_requests.py::test_an_oversized_request_head_gets_431_and_garbage_"
            "gets_400")

# name: (file under src/movierec, text to replace, replacement, tests that must then fail)
MUTATIONS = {
    "no-read-deadline": (
        "service/server.py", "        http=GuardedHttpProtocol,\n", "",
        [T + "test_hostile_requests.py::test_slow_and_idle_clients_are_cut_off_while_everyone"
             "_else_is_served",
         HEAD_431]),
    "no-head-cap": (
        "service/server.py", "MAX_REQUEST_HEAD = 16 * 1024", "MAX_REQUEST_HEAD = 1 << 40",
        [HEAD_431]),
    "no-fail-fast": (
        "store/server.py", "FAIL_FAST_SECONDS = 2.0", "FAIL_FAST_SECONDS = 0.0",
        [T + "test_faults.py::test_hung_then_gone_then_different_qdrant_gives_bounded_503s_and_"
             "reconnects"]),
    "no-qdrant-timeout": (
        "store/server.py", "        timeout=int(max(1, timeout)),\n", "        timeout=30,\n",
        [T + "test_faults.py::test_hung_then_gone_then_different_qdrant_gives_bounded_503s_and_"
             "reconnects"]),
    "switch-before-write": (
        "store/embedded.py", "        self._meta = meta.with_version(self.version)\n",
        "        self._meta = meta.with_version(self.version)\n"
        "        write_atomic(self._path / META, json.dumps(self._meta.to_dict()).encode())\n"
        "        write_atomic(self.root / CURRENT,\n"
        "                     json.dumps({'version': self.version}).encode())\n",
        [T + "test_ingest_kill.py"]),
    "no-checksum": (
        "movielens.py", "        if actual != expected:\n", "        if False:\n",
        [T + "test_faults.py::test_a_bad_download_is_refused_and_writes_nothing"]),
    "no-store-lock": (
        "store/files.py", "            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
        "            pass\n",
        [T + "test_faults.py::test_a_second_server_on_a_served_embedded_store_is_refused_and_"
             "harms_nothing"]),
    "no-streamed-body-limit": (
        "service/guards.py", "                if seen > self.max_bytes:\n",
        "                if False:\n",
        [T + "test_hostile_requests.py::test_a_huge_streamed_body_is_cut_off_at_64_kib"]),
    "no-nesting-limit": (
        "service/strict.py", "                    and max_depth(body) > MAX_JSON_DEPTH):\n",
        "                    and False):\n",
        [T + "test_hostile_requests.py::test_deeply_nested_json_is_refused_without_parsing_it"]),
    "key-in-log": (
        "store/server.py", "    return QdrantClient(\n        url=url,\n",
        "    import logging\n    logging.getLogger('movierec').warning('connecting with %s', "
        "api_key)\n    return QdrantClient(\n        url=url,\n",
        [T + "test_secrets_and_privilege.py::test_keys_never_appear_in_logs_bodies_headers_or_"
             "metrics"]),
    "token-compare-with-eq": (
        "service/guards.py", "        if not hmac.compare_digest(given, self.expected):\n",
        "        if given != self.expected:\n",
        [T + "test_hostile_requests.py::test_the_token_is_compared_in_constant_time"]),
}


def run(name: str) -> bool:
    relative, old, new, tests = MUTATIONS[name]
    work = Path(tempfile.mkdtemp(prefix=f"movierec-mutant-{name}-"))
    try:
        shutil.copytree(ROOT / "src", work / "src")
        target = work / "src" / "movierec" / relative
        text = target.read_text()
        if text.count(old) != 1:
            print(f"{name}: target text not found once in {relative}; update this mutation")
            return False
        target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": f"{work / 'src'}{os.pathsep}{ROOT}"}
        # Its own process group: on a timeout, the servers the tests started go down with it.
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                 "no:cacheprovider", *tests], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        failed = proc.returncode == 1
        last = [line for line in out.splitlines() if line.strip()][-1:]
        print(f"{name}: {'FAILS as it should' if failed else 'STILL PASSES'} "
              f"(exit {proc.returncode}; {last[0] if last else ''})")
        return failed
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(names: list[str]) -> int:
    results = [run(name) for name in (names or MUTATIONS)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
