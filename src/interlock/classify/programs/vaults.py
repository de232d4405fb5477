"""Judges of password managers and secret stores: 1Password (`op`), Bitwarden (`bw`), `pass`/`gopass`,
LastPass (`lpass`), `sops`, `ansible-vault`, `chamber`, the Heroku CLI, macOS `security` and `secret-tool`.

What prints or hands over a secret's value (`op read`, `bw get password`, `pass show`, `sops -d`) is at
least write + `secrets` (docs/classifiers.md, "Secrets and credentials"); names and metadata (`op item
list`, `pass ls`) are read; a command they run with the secrets in its environment (`op run -- CMD`,
`chamber exec`) cannot be judged: unknown.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from interlock.classify.programs.base import (
    SECRETS,
    D,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    W,
    Word,
    discloses,
    judge,
    lit,
    name_set,
)


class Store(NamedTuple):
    """A secret store's verbs (`group-verb` for grouped ones: `item-get`), by what they do."""

    groups: frozenset[str]
    reveals: frozenset[str]
    read: frozenset[str]
    write: frozenset[str]
    destructive: frozenset[str] = frozenset()
    runs: frozenset[str] = frozenset()


def store(groups: str = "", reveals: str = "", read: str = "", write: str = "", destructive: str = "",
          runs: str = "") -> Store:
    return Store(*(name_set(text) for text in (groups, reveals, read, write, destructive, runs)))


STORES = {
    "op": store(
        groups="item vault document account user group connect service-account plugin events-api",
        reveals="read inject item-get document-get signin",
        read="item-list vault-list vault-get account-list account-get whoami user-list user-get group-list "
        "group-get completion",
        write="item-create item-edit item-move document-create document-edit vault-create vault-edit signout "
        "account-add account-forget user-provision user-edit group-create update",
        destructive="item-delete document-delete vault-delete user-delete user-suspend group-delete",
        runs="run",
    ),
    "bw": store(
        reveals="get export unlock",
        read="status generate completion",
        write="create edit sync login logout lock config import move restore confirm send receive",
        destructive="delete",
        runs="serve",  # a local API that hands the unlocked vault to any process that asks
    ),
    "lpass": store(
        reveals="show export",
        read="ls status",
        write="login logout sync add edit mv duplicate passwd generate",
        destructive="rm",
    ),
    "ansible-vault": store(
        reveals="view decrypt",
        write="encrypt encrypt_string create edit rekey",
    ),
    "chamber": store(
        reveals="read export env",
        read="list list-services history find version",
        write="write import",
        destructive="delete",
        runs="exec",
    ),
    "secret-tool": store(
        reveals="lookup search",
        write="store lock",
        destructive="clear",
    ),
    "heroku": store(
        reveals="auth:token config config:get pg:credentials pg:credentials:url redis:credentials",
        read="apps apps:info info ps logs releases addons domains auth:whoami pg:info status access regions "
        "features labs stack",
        write="config:set ps:scale maintenance:off",
        # Restarting, stopping or taking the app offline is an outage; unsetting a variable may break it.
        destructive="config:unset ps:restart restart ps:stop ps:kill maintenance:on",
        runs="run run:detached console",
    ),
}


@judge(*STORES)
def judge_store(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    table = STORES[prog]
    words = [v for v in values if not v.startswith("-")]
    if not words:
        return Judgement(R, f"{prog} prints usage")
    verb = f"{words[0]}-{words[1]}" if words[0] in table.groups and len(words) > 1 else words[0]
    shown = verb.replace("-", " ") if words[0] in table.groups else verb
    if prog == "bw" and verb == "list":
        # `bw list items` prints every item with its password; folders, collections and members are names.
        if words[1:2] in (["folders"], ["collections"], ["organizations"], ["org-collections"], ["org-members"]):
            return Judgement(R, f"bw list {words[1]} shows names", SECRETS)
        return discloses(f"bw list {' '.join(words[1:2])}")
    if verb in table.reveals:
        return discloses(f"{prog} {shown}")
    # Everything a secret store does concerns secrets; Heroku's other commands concern an app.
    tags = frozenset() if prog == "heroku" else SECRETS
    if prog == "heroku" and verb == "ps:scale" and any(re.search(r"=0+(?::|$)", w) for w in words[1:]):
        return Judgement(D, "heroku ps:scale to zero: the process type stops")
    if verb in table.runs:
        return Judgement(U, f"{prog} {shown} runs a command or a server that holds the secrets",
                         SECRETS | {"interpreter"})
    if verb in table.read:
        return Judgement(R, f"{prog} {shown}")
    if verb in table.write:
        return Judgement(W, f"{prog} {shown}", tags)
    if verb in table.destructive:
        return Judgement(D, f"{prog} {shown}", tags)
    return Judgement(U, f"{prog} {shown} not understood", tags)


#: `pass`/`gopass` verbs; any other first word is an entry's name, which `pass NAME` shows.
_PASS_READ = name_set("ls list find search version help")
_PASS_WRITE = name_set("init insert generate edit mv cp git sync setup")
_PASS_REVEALS = name_set("show otp grep cat")


@judge("pass", "gopass")
def judge_pass(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    if not words or words[0] in _PASS_READ:
        return Judgement(R, f"{' '.join([prog, *words[:1]])} lists entry names", SECRETS)
    if words[0] in _PASS_WRITE:
        return Judgement(W, f"{prog} {words[0]}", SECRETS)
    if words[0] in ("rm", "delete", "remove"):
        return Judgement(D, f"{prog} {words[0]}", SECRETS)
    if words[0] in _PASS_REVEALS:
        return discloses(f"{prog} {words[0]}")
    if prog == "gopass":
        # gopass has many more subcommands (mounts, recipients, fsck …): a word we do not know may be one.
        return Judgement(U, f"gopass {words[0]} not understood", SECRETS)
    return discloses(f"pass {words[0]} shows the entry")


@judge("sops")
def judge_sops(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, "sops argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    flags = {v.partition("=")[0] for v in values if v.startswith("-")}
    if words[:1] in (["exec-env"], ["exec-file"]):
        return Judgement(U, f"sops {words[0]} runs a command with the decrypted file", SECRETS | {"interpreter"})
    if words[:1] == ["decrypt"] or flags & {"-d", "--decrypt", "--extract"}:
        return discloses("sops decrypts")
    if not words:
        return Judgement(R, "sops prints usage")
    if words[0] in _SOPS_WRITES or "." in words[0] or "/" in words[0]:  # `sops FILE` opens it to edit
        return Judgement(W, f"sops {words[0]} edits or encrypts", SECRETS)
    return Judgement(U, f"sops {words[0]} not understood", SECRETS)


_SOPS_WRITES = name_set("encrypt edit publish updatekeys rotate set unset groups filestatus")


@judge("security")
def judge_security(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """macOS `security`: `find-*-password -w|-g` and `dump-keychain -d` print secrets; without them the
    attributes only."""
    values = lit(args)
    if values is None:
        return Judgement(U, "security argument produced by an expansion")
    verb = next((v for v in values if not v.startswith("-")), "")
    flags = {v for v in values if v.startswith("-")}
    letters = {letter for flag in flags if not flag.startswith("--") for letter in flag[1:]}  # `-wa` = -w -a
    if verb.startswith("find-") and verb.endswith("-password"):
        if letters & {"w", "g"}:
            return discloses(f"security {verb} -{''.join(sorted(letters & {'w', 'g'}))}")
        return Judgement(R, f"security {verb} shows the item's attributes", SECRETS)
    if verb == "dump-keychain":
        return discloses("security dump-keychain -d") if "d" in letters else Judgement(R, "security dump-keychain")
    if verb.startswith(("list-", "show-", "find-")):
        return Judgement(R, f"security {verb}")
    return Judgement(U, f"security {verb} not understood")


#: gpg commands that print a secret: private keys exported, data decrypted.
_GPG_REVEALS = name_set("--export-secret-keys --export-secret-subkeys --export-ssh-key -d --decrypt --decrypt-files")
_GPG_READS = name_set(
    "--list-keys -k --list-public-keys --list-secret-keys -K --list-sigs --fingerprint --check-sigs --verify "
    "--version --help --list-packets --show-keys --export --armor -a"
)


@judge("gpg", "gpg2")
def judge_gpg(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    found = [v for v in values if v in _GPG_REVEALS]
    if found:
        return discloses(f"{prog} {found[0]} prints a private key or decrypted data")
    commands = [v for v in values if v.startswith("-")]
    if commands and all(v in _GPG_READS or v.startswith(("--keyid-format", "--with-")) for v in commands):
        return Judgement(R, f"{prog} lists or verifies keys")
    return Judgement(U, f"{prog} {' '.join(commands[:2])} not understood (it signs, encrypts, imports or deletes)")


@judge("age")
def judge_age(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, "age argument produced by an expansion")
    if any(v in ("-d", "--decrypt") for v in values):
        return discloses("age -d decrypts")
    return Judgement(W, "age encrypts", SECRETS)
