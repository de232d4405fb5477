"""Judges of programs that talk to other hosts: curl, wget, ssh, scp, rsync."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from interlock.classify import http as http_kind
from interlock.classify.programs.base import (
    D,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    W,
    Word,
    discloses,
    has_flag,
    judge,
    lit,
    name_set,
    parse_opts,
    worst,
)
from interlock.classify.programs.targets import (
    names_protected,
    tree_into,
    write_to,
)


@judge("curl")
def judge_curl(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(
        args,
        "XdoHuAeEFTKbcrwmxyzYQt",
        name_set(
            """
            request data data-raw data-binary data-urlencode output header user form upload-file config
            cookie cookie-jar json url proxy write-out max-time connect-timeout retry output-dir cacert
            cert key form-string referer
            """
        ),
    )
    tags = {"network"}
    if any(w.value is not None and w.value.startswith("--engine") for w in args):
        return Judgement(U, "curl --engine loads a library of the caller's choosing", frozenset(tags))
    if "K" in opts.values or "config" in opts.values:
        return Judgement(U, "curl reads its options from a file", frozenset(tags))
    method = (opts.values.get("X") or opts.values.get("request") or "").upper()
    if ("X" in opts.values or "request" in opts.values) and not method:
        return Judgement(U, "curl method produced by an expansion", frozenset(tags))
    data_keys = name_set("d data data-raw data-binary data-urlencode F form json T upload-file form-string")
    sent = [opts.values[k] for k in data_keys if k in opts.values]
    if (
        any(v is not None and (v.startswith("@") or "=@" in v or "=<" in v) for v in sent)
        or "T" in opts.values
        or "upload-file" in opts.values
    ):
        tags.add("exfiltration")
    judgements: list[Judgement] = []
    if method == "DELETE":
        judgements.append(Judgement(D, "curl sends a DELETE request", frozenset(tags)))
    elif method in ("POST", "PUT", "PATCH") or sent:
        judgements.append(Judgement(W, f"curl sends a {method or 'POST'} request", frozenset(tags)))
    elif method not in ("", "GET", "HEAD", "OPTIONS"):
        judgements.append(Judgement(U, f"curl sends a {method} request", frozenset(tags)))
    out = opts.values.get("o") or opts.values.get("output")
    if "o" in opts.values or "output" in opts.values:
        judgements.append(write_to(Word(out, out or "$?"), "curl saves to").with_tags(*tags))
    if opts.flags & {"O", "remote-name", "remote-name-all", "J"}:
        judgements.append(Judgement(W, "curl saves the download in the current directory", frozenset(tags)))
    urls = [w.value for w in opts.operands if w.value] + [v for k in ("url",) if (v := opts.values.get(k))]
    disclosed = secret_api("curl", method or ("POST" if sent else "GET"), urls, header_values(args, ("-H", "--header")))
    if disclosed is not None:
        judgements.append(disclosed.with_tags(*tags))
    return worst(judgements) if judgements else Judgement(R, "curl fetches to standard output", frozenset(tags))


def header_values(args: list[Word], names: tuple[str, ...]) -> dict[str, str]:
    """The headers a command line sends (`-H 'X-Vault-Token: …'`, `--header=…`): name → value."""
    found: dict[str, str] = {}
    for index, word in enumerate(args):
        value = word.value or ""
        text = None
        if value in names and index + 1 < len(args):
            text = args[index + 1].value
        elif value.startswith(tuple(f"{n}=" for n in names if n.startswith("--"))):
            text = value.partition("=")[2]
        if text and ":" in text:
            name, _, header = text.partition(":")
            found[name.strip()] = header.strip()
    return found


def secret_api(prog: str, method: str, urls: list[str], headers: dict[str, str]) -> Judgement | None:
    """A request to a secret store's API whose answer is a secret's value (the http kind's judge: the
    Kubernetes API's secrets, Vault, Secret Manager, Key Vault), as `discloses`; None for any other."""
    lowered = [name.lower() for name in headers]
    for url in urls:
        try:
            parts = urlsplit(url if "://" in url else f"http://{url}")
            host, port = parts.hostname, parts.port
        except ValueError:
            continue
        if not host:
            continue
        what = http_kind.disclosure(method, host, port, unquote(parts.path), lowered, headers, None)
        if what is not None:
            return discloses(f"{prog} {method} {host}{parts.path[:80]} returns {what}")
    return None


@judge("wget")
def judge_wget(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(
        args,
        "OoPaAeTtUi",
        name_set(
            """
            output-document post-data post-file method directory-prefix body-data execute input-file
            header user-agent config
            """
        ),
    )
    tags = frozenset({"network"})
    if opts.values.keys() & {"e", "execute", "config"}:
        # A wgetrc command can name any file to write (`output_document=`) or send (`post_file=`).
        return Judgement(U, "wget runs wgetrc commands we do not judge", tags)
    method = (opts.values.get("method") or "").upper()
    if method == "DELETE":
        return Judgement(D, "wget sends a DELETE request", tags)
    if opts.flags & {"post-data", "post-file", "body-data"} or method in ("POST", "PUT", "PATCH"):
        extra = {"exfiltration"} if "post-file" in opts.flags else set()
        return Judgement(W, "wget sends data", tags | extra)
    if opts.flags & {"spider"}:
        return Judgement(R, "wget checks a URL", tags)
    urls = [w.value for w in opts.operands if w.value]
    disclosed = secret_api("wget", "GET", urls, header_values(args, ("--header",)))
    if disclosed is not None:
        return disclosed.with_tags(*tags)
    out = opts.values.get("O") or opts.values.get("output-document")
    if out == "-":
        return Judgement(R, "wget fetches to standard output", tags)
    if out is not None:
        return write_to(Word(out, out), "wget saves to").with_tags(*tags)
    if "O" in opts.values or "output-document" in opts.values:
        return Judgement(U, "wget output produced by an expansion", tags)
    return Judgement(W, "wget saves the download in the current directory", tags)


#: ssh settings that run a program (GTFOBins: `-o ProxyCommand=…`, `LocalCommand`, `Match exec`).
_SSH_RUNS = re.compile(r"(proxycommand|localcommand|knownhostscommand|match\b)", re.IGNORECASE)


def transport_hook(prog: str, args: list[Word]) -> str | None:
    """The option that makes ssh, scp, sftp or rsync run a program of the caller's choosing, or None:
    an ssh setting that runs one, a config file we cannot see (`-F`), scp's `-S PROGRAM`, rsync's
    `-e`/`--rsh` other than plain ssh, and `--rsync-path`."""
    for i, word in enumerate(args):
        v = word.value
        if v is None:
            continue
        after = args[i + 1].value if i + 1 < len(args) else None
        if prog != "rsync":
            setting = after if v == "-o" else v[2:] if v.startswith("-o") and len(v) > 2 else None
            if v == "-o" and after is None:
                return "-o produced by an expansion"
            if setting is not None and _SSH_RUNS.search(setting):
                return f"-o {setting}"
            if v.startswith("-F") or (prog == "scp" and v.startswith("-S")):
                return v
            continue
        if v.startswith("--rsync-path"):
            return v
        shell = after if v in ("-e", "--rsh") else v.partition("=")[2] if v.startswith("--rsh=") else None
        if shell is None and v.startswith("-e") and len(v) > 2 and not v.startswith("--"):
            shell = v[2:]
        if shell is not None or (v in ("-e", "--rsh") and after is None):
            words = (shell or "").split()
            if not words or words[0] not in ("ssh", "/usr/bin/ssh") or any(
                _SSH_RUNS.search(w) or w.startswith("-F") for w in words
            ):
                return f"-e {shell}"
    return None


@judge("ssh", "scp", "rsync", "sftp")
def judge_ssh(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "bcDEeFIiJLlmOopQRSWw")
    hook = transport_hook(prog, args)
    if hook is not None:
        return Judgement(U, f"{prog} {hook} names a program to run", frozenset({"network", "interpreter"}))
    if prog == "rsync" and has_flag(args, "n", ("dry-run",), takes="eBfTM"):
        return Judgement(R, "rsync --dry-run lists what it would copy", frozenset({"network"}))
    if prog in ("scp", "rsync", "sftp"):
        dest = opts.operands[-1] if opts.operands else None
        local = dest is not None and dest.value is not None and ":" not in dest.value
        if prog == "rsync" and any(
            (w.value or "").startswith("--delete") or w.value == "--remove-source-files" for w in args
        ):
            tags = frozenset({"mass", "network"})
            # Taking protected files away, from the sources or the destination, is taking the controls away.
            why = names_protected(opts.operands if local else opts.operands[:-1])
            if why is not None:
                return Judgement(D, f"rsync removes files of {why}", tags | {"protected-target"})
            return Judgement(D, "rsync --delete removes files at the destination", tags)
        if prog == "sftp":
            return Judgement(U, "sftp runs an interactive session", frozenset({"network"}))
        if dest is not None and local:
            recursive = prog == "rsync" and has_flag(args, "ar", ("archive", "recursive"), takes="eBfTM")
            over = tree_into(dest, f"{prog} copies a tree into") if recursive or has_flag(args, "r") else None
            if over is not None:
                return over.with_tags("network")
            return write_to(dest, f"{prog} copies to").with_tags("network")
        return Judgement(W, f"{prog} copies files to {dest.show if dest else 'a host'}", frozenset({"network"}))
    if not opts.operands:
        return Judgement(U, "ssh without a host", frozenset({"network"}))
    remote = opts.operands[1:]
    if not remote:
        if stdin.text is not None:
            # The remote login shell runs the here-doc (or piped text) as commands.
            nested = run.shell(stdin.text)
            return Judgement(nested.risk, f"ssh {opts.operands[0].show}: {nested.reason}", nested.tags | {"network"})
        return Judgement(U, f"ssh opens an interactive session on {opts.operands[0].show}", frozenset({"network"}))
    values = lit(remote)
    if values is None:
        return Judgement(U, "ssh remote command produced by an expansion", frozenset({"network"}))
    nested = run.shell(" ".join(values))
    return Judgement(
        nested.risk,
        f"ssh {opts.operands[0].show}: {nested.reason}",
        nested.tags | {"network"},
        nested.paths,
        nested.nested,
    )
