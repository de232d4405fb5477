"""Hot-path ids (`interlock.ids.token_hex`): `secrets.token_hex`'s shape, bytes never handed out twice,
never shared with a forked child."""

from __future__ import annotations

import os
import threading

import pytest

from interlock import ids


@pytest.mark.parametrize(("nbytes", "length"), [(1, 2), (10, 20), (16, 32), (5000, 10000)])
def test_the_shape_of_secrets_token_hex(nbytes: int, length: int) -> None:
    token = ids.token_hex(nbytes)
    assert len(token) == length and int(token, 16) >= 0 and token == token.lower()


def test_no_id_twice_across_threads_and_blocks() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [ids.token_hex(10) for _ in range(2000)]  # 20 KB: several blocks
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == len(seen) == 8000


def test_a_forked_child_never_hands_out_its_parents_bytes() -> None:
    ids.token_hex(10)  # the parent holds a block now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same call the parent makes next
        os.write(write, ids.token_hex(10).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 20 and child != ids.token_hex(10)


def test_ordered_ids_sort_by_time_and_keep_every_random_byte() -> None:
    made = [ids.ordered_hex(10) for _ in range(5000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in made)
    assert [i[:12] for i in made] == sorted(i[:12] for i in made)  # the millisecond prefix never goes back
    assert len({i[12:] for i in made}) == len(made)  # 10 random bytes each, as token_hex(10)
