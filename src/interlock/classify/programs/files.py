"""Judges of programs that delete, copy, move, create, edit or print files (rm, cp, sed, tar, less …)."""

from __future__ import annotations

import re

from interlock.classify.programs.base import (
    TTY,
    D,
    Judgement,
    Opts,
    R,
    Runner,
    Stdin,
    U,
    W,
    Word,
    has_flag,
    judge,
    name_set,
    parse_opts,
    worst,
)
from interlock.classify.programs.targets import (
    EMPTY_SOURCES,
    LINE,
    emptied,
    harmless_sink,
    in_scratch_word,
    is_mass_path,
    is_system_path,
    names_protected,
    paths_of,
    protected_path,
    removal,
    resolve_path,
    tree_into,
    write_to,
)


@judge("rm", "unlink")
def judge_rm(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args)
    recursive = bool(opts.flags & {"r", "R", "recursive"})
    targets = opts.operands
    mass = recursive or any(w.value is not None and is_mass_path(w.value) for w in targets)
    tags = {"irreversible"} | ({"mass"} if mass else set())
    kind = "recursive delete" if recursive else "delete"
    if any(w.value is not None and w.value in ("/", "/*") for w in targets):
        kind += " of the root filesystem"
    return removing(Judgement(D, kind, frozenset(tags), paths_of(targets)), targets)


def removing(judgement: Judgement, targets: list[Word]) -> Judgement:
    """A removal judged by the shared path judge: taking a protected path (or a directory holding
    one) away is destructive + `protected-target`; removing only things strictly inside scratch
    space (`rm -rf /tmp/build`) is `write`."""
    why, scratch = removal(targets)
    if why is not None:
        system = any(w.value is not None and is_system_path(w.value) for w in targets)
        reason = judgement.reason if system else f"{judgement.reason} of {why}"
        return Judgement(D, reason, judgement.tags | {"protected-target"}, judgement.paths)
    if scratch:
        return Judgement(W, f"{judgement.reason} in scratch space", frozenset({"scratch"}), judgement.paths)
    return judgement


@judge("rmdir")
def judge_rmdir(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args)
    return removing(Judgement(D, "removes directories", frozenset(), paths_of(opts.operands)), opts.operands)


@judge("shred", "srm", "wipe")
def judge_shred(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "nsx", ["iterations", "size", "random-source", "remove"])
    judgement = Judgement(D, "overwrites files beyond recovery", frozenset({"irreversible"}), paths_of(opts.operands))
    return removing(judgement, opts.operands)


#: Per disk tool: the options that only print (anything else may rewrite the disk).
_DISK_LISTING = {
    "fdisk": name_set("-l --list"),
    "sfdisk": name_set("-l --list -d --dump -s --show-size -J --json -V --verify"),
    "parted": name_set("-l --list print"),
    "sgdisk": name_set("-p --print -v --verify -i --info -P --pretend"),
    "blkid": name_set("-p -o -s -t -L -U"),
}


@judge(
    *name_set(
        """
    mkfs mke2fs mkswap wipefs fdisk sfdisk parted sgdisk gdisk blkdiscard cryptsetup lvremove vgremove
    pvremove zpool zfs mdadm badblocks
    """
    )
)
def judge_disk(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = {w.value for w in args}
    if prog == "wipefs" and not values & name_set("-a --all -o --offset -f --force"):
        return Judgement(R, "wipefs lists signatures")
    listing = _DISK_LISTING.get(prog)
    if listing is not None and values & listing:
        return Judgement(R, f"{prog} lists partitions")
    opts = parse_opts(args)
    return Judgement(
        D, f"{prog} rewrites a disk or filesystem", frozenset({"irreversible", "mass"}), paths_of(opts.operands)
    )


@judge("truncate", "fallocate")
def judge_truncate(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "sr", ["size", "reference"])
    truncates = Judgement(D, "truncates files", frozenset({"irreversible"}), paths_of(opts.operands))
    return removing(truncates, opts.operands)


@judge("dd")
def judge_dd(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    source = next((w.value[3:] for w in args if w.value is not None and w.value.startswith("if=")), None)
    for word in args:
        if word.value is None:
            return Judgement(U, f"dd operand produced by an expansion ({word.text})")
        if word.value.startswith("of="):
            target = Word(word.value[3:], word.text[3:])
            judgement = write_to(target, "dd writes to")
            if source in EMPTY_SOURCES:
                judgement = emptied(judgement, target, f"dd overwrites with {source}")
            return judgement.with_tags("irreversible") if judgement.risk is D else judgement
    return Judgement(R, "dd copies to standard output")


@judge("find")
def judge_find(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    judgements = [Judgement(R, "find lists files")]
    i = 0
    starts: list[Word] = []
    while i < len(args) and (args[i].value is None or not args[i].value.startswith(("-", "(", "!"))):  # type: ignore[union-attr]
        starts.append(args[i])
        i += 1
    paths = paths_of(starts) or (".",)
    while i < len(args):
        v = args[i].value
        i += 1
        if v in ("-delete",):
            deletes = Judgement(D, "find deletes the files it matches", frozenset({"mass", "irreversible"}), paths)
            judgements.append(removing(deletes, starts or [Word(".", ".")]))
        elif v in ("-exec", "-execdir", "-ok", "-okdir"):
            inner: list[Word] = []
            while i < len(args) and args[i].value not in (";", "+"):
                w = args[i]
                inner.append(Word(None, "{}") if w.value is not None and "{}" in w.value else w)
                i += 1
            i += 1
            if not inner:
                judgements.append(Judgement(U, f"find {v} without a command"))
                continue
            nested = run.argv(inner, TTY)
            judgements.append(
                Judgement(
                    nested.risk,
                    f"find {v} runs {inner[0].show}: {nested.reason}",
                    nested.tags,
                    paths,
                    nested.nested,
                )
            )
        elif v in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            if i < len(args):
                judgements.append(write_to(args[i], f"find {v} writes to"))
            i += 1
        elif v is None:
            judgements.append(Judgement(U, "find expression produced by an expansion"))
    top = worst(judgements)
    return Judgement(top.risk, top.reason, top.tags, paths if top.risk is not R else top.paths, top.nested)


@judge("mv")
def judge_mv(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """mv and ln. mv also takes its sources away, so a source on a system path counts too."""
    opts = parse_opts(args, "tS", ["target-directory", "suffix", "backup"])
    dest_value = opts.values.get("t") or opts.values.get("target-directory")
    if dest_value is not None:
        dest: Word | None = Word(dest_value, dest_value)
        sources = opts.operands
    else:
        dest = opts.operands[-1] if len(opts.operands) >= 2 else None
        sources = opts.operands[:-1] if dest is not None else opts.operands
    if dest is None:
        return Judgement(W, f"{prog} without a destination", frozenset(), paths_of(sources))
    judgement = write_to(dest, f"{prog} {'moves to' if prog == 'mv' else 'links'}")
    if prog == "mv" and dest.value is not None and harmless_sink(dest.value):
        judgement = Judgement(D, f"mv into {dest.value} destroys the files", frozenset({"irreversible"}))
    judgements = [judgement, *into_directory(dest, sources, f"{prog} {'moves to' if prog == 'mv' else 'links'}")]
    if prog == "mv":
        judgements += [
            write_to(w, "mv moves away").with_tags() for w in sources if w.value is None or is_system_path(w.value)
        ]
        why, _ = removal(sources)
        if why is not None:
            judgements.append(Judgement(D, f"mv moves away {why}", frozenset({"protected-target"})))
        judgements += moved_onto_again(opts, sources, dest, dest_value is not None)
    top = worst(judgements)
    paths = paths_of([*sources, dest])
    if opts.flags & {"f", "force"} and top.risk is W:
        return Judgement(D, f"{prog} -f replaces {dest.show}", top.tags | {"replace"}, paths)
    return Judgement(top.risk, top.reason, top.tags, paths)


def moved_onto_again(opts: Opts, sources: list[Word], dest: Word, to_directory: bool) -> list[Judgement]:
    """Several moves in one line onto one destination not shown to be a directory overwrite each
    other (the Gemini CLI incident: `mv a ../d; mv b ../d` after a failed `mkdir ../d` leaves only
    the last file, named `d`). Shown to be a directory: `-t`, a trailing `/`, several sources (mv
    refuses them onto a file), `.`/`..`/`~`; `-n` never overwrites."""
    line = LINE.get()
    if line.moved_onto is None or dest.value is None or to_directory or len(sources) != 1:
        return []
    if opts.flags & {"n", "no-clobber", "T", "no-target-directory"} or dest.value.endswith("/"):
        return []
    target = resolve_path(dest.value) or dest.value
    if target in (".", "..", "~") or target.endswith(("/.", "/..")):
        return []
    if target in line.moved_onto:
        why = f"mv onto {dest.value} again: each move overwrites the one before (not shown to be a directory)"
        return [Judgement(D, why, frozenset({"replace", "irreversible"}))]
    line.moved_onto.add(target)
    return []


@judge("cp", "install")
def judge_cp(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "tS", ["target-directory", "suffix", "backup"])
    dest = opts.values.get("t") or opts.values.get("target-directory")
    target = Word(dest, dest or "") if dest else (opts.operands[-1] if opts.operands else None)
    if target is None:
        return Judgement(W, f"{prog} copies files")
    judgement = write_to(target, f"{prog} copies to")
    if judgement.risk is R:
        judgement = Judgement(R, f"{prog} copies to {target.show}")
    sources = opts.operands if dest else opts.operands[:-1]
    if (
        judgement.risk is W
        and any(w.value == "/dev/null" for w in sources)
        and target.value is not None
        and not in_scratch_word(target)
    ):
        judgement = Judgement(D, f"{prog} /dev/null empties {target.value}", frozenset({"irreversible"}))
    recursive = bool(opts.flags & {"r", "R", "a", "recursive", "archive"})
    over = tree_into(target, f"{prog} copies a tree into") if recursive else None
    judgement = worst([judgement, *into_directory(target, sources, f"{prog} copies to"), *([over] if over else [])])
    tags = frozenset({"mass"}) if recursive and judgement.risk is D else frozenset()
    return Judgement(judgement.risk, judgement.reason, judgement.tags | tags, paths_of(opts.operands))


def into_directory(dest: Word, sources: list[Word], action: str) -> list[Judgement]:
    """`cp settings.json .claude/` writes `.claude/settings.json`: when the destination is a
    directory, each source lands in it under its own name, which may be a protected path."""
    if dest.value is None:
        return []
    found = []
    for source in sources:
        if source.value is None:
            continue
        landed = dest.value.rstrip("/") + "/" + source.value.rstrip("/").rpartition("/")[2]
        why = protected_path(landed)
        if why is not None:
            found.append(Judgement(D, f"{action} {landed}, a protected path ({why})", frozenset({"protected-target"})))
    return found


@judge("ln")
def judge_ln(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    return judge_mv("ln", args, stdin, run)


@judge("touch", "mkdir", "mkfifo", "mknod")
def judge_touch(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "dtrm" if prog == "touch" else "m", ["date", "reference", "mode", "context"])
    judgements = [write_to(w, f"{prog} creates") for w in opts.operands]
    # Creating a file or directory overwrites nothing, even in a system path (tag `privilege`); a
    # protected path stays destructive (an empty hook file, a directory where a hook will go).
    judgements = [
        Judgement(W, v.reason, v.tags - {"irreversible"} | {"privilege"}, v.paths)
        if v.risk is D and ("protected-target" not in v.tags or any(is_system_path(p) for p in v.paths))
        else v
        for v in judgements
    ]
    return worst(judgements) if judgements else Judgement(W, f"{prog} creates files")


@judge("tee")
def judge_tee(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args)
    appends = bool(opts.flags & {"a", "append"})
    action = "tee appends to" if appends else "tee writes to"
    judgements = [write_to(w, action) for w in opts.operands]
    if not appends and stdin.origin == "file" and stdin.source in EMPTY_SOURCES:
        emptying = f"tee < {stdin.source} empties"
        judgements = [emptied(j, w, emptying) for j, w in zip(judgements, opts.operands, strict=True)]
    return worst(judgements) if judgements else Judgement(R, "tee copies standard input to standard output")


#: chmod modes that set the setuid or setgid bit: `u+s`, `g+s`, `+s`, `a=rwxs`, `4755`, `2755`, `6755`.
_SETUID = re.compile(r"(^[ugoa]*[+=][rwxXt]*s)|(,[ugoa]*[+=][rwxXt]*s)|(^0?[2-7][0-7]{3}$)")


@judge("chmod", "chown", "chgrp", "chattr", "setfacl")
def judge_chmod(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "", ["reference", "from"])
    operands = opts.operands
    mode_word = operands[0].value if operands and prog == "chmod" else None
    files = operands[1:] if prog in ("chmod", "chown", "chgrp") else operands
    recursive = bool(opts.flags & {"R", "recursive"})
    tags: set[str] = set()
    if recursive:
        tags.add("mass")
    if mode_word and re.search(
        r"(^[0-7]?[0-7][0-7]7$)|([oa]?\+[rwx]*w)|(^[0-7]?[0-7]7[0-7]$)|([ugo]*\+s)|(^[2-7][0-7]{3}$)",
        mode_word,
    ):
        tags.add("privilege")
    if mode_word and _SETUID.search(mode_word):
        # A setuid or setgid program runs with its owner's rights, whoever starts it.
        return Judgement(
            D, f"chmod {mode_word} sets the setuid/setgid bit", frozenset(tags | {"privilege"}), paths_of(files)
        )
    if any(w.value is None for w in files):
        return Judgement(U, f"{prog} on a path produced by an expansion", frozenset(tags), paths_of(files))
    why, _ = removal(files)
    if why is not None:
        return Judgement(D, f"{prog} changes {why}", frozenset(tags | {"protected-target"}), paths_of(files))
    system = [w.value for w in files if w.value is not None and (is_system_path(w.value) or is_mass_path(w.value))]
    if system:
        return Judgement(D, f"{prog} changes {', '.join(system)}", frozenset(tags), paths_of(files))
    what = "recursively changes" if recursive else "changes"
    noun = {"chmod": "permissions", "chown": "ownership", "chgrp": "group"}.get(prog, "attributes")
    return Judgement(W, f"{prog} {what} {noun}", frozenset(tags), paths_of(files))


#: A sed script that deletes every line: `d`, `1,$d`, `1,$ d;`.
_DELETES_ALL = re.compile(r"\s*(1\s*,\s*\$\s*)?d\s*;?\s*")


@judge("sed", "gsed")
def judge_sed(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "ef", ["expression", "file"])
    if "f" in opts.values or "file" in opts.values:
        return Judgement(U, "sed runs a script file")
    scripts = [opts.values[k] for k in ("e", "expression") if k in opts.values]
    operands = opts.operands
    if not scripts and operands:
        scripts, operands = [operands[0].value], operands[1:]
    if any(s is None for s in scripts):
        return Judgement(U, "sed script produced by an expansion")
    for script in scripts:
        assert script is not None
        # `e` executes the pattern space as a command; `s///e` runs the replacement.
        if re.search(
            r"(^|[;\n{}])\s*(\d+|\$|/[^/]*/)?(,\s*(\d+|\$|/[^/]*/))?\s*!?\s*e(\s|;|$)|s(.).*\6.*\6[gpiImM0-9w]*e",
            script,
        ):
            return Judgement(D, "sed runs a shell command (e)", frozenset({"interpreter"}))
        target = re.search(r"(^|[;\n}]\s*|s(.).*\2.*\2[gpiImM0-9e]*)w\s*(\S+)", script)
        if target:
            return write_to(Word(target.group(3), target.group(3)), "sed writes to")
    if (
        any(f.startswith("i") for f in opts.flags)
        or "in-place" in opts.flags
        or any(f.startswith("in-place") for f in opts.values)
    ):
        judgements = [write_to(w, "sed edits") for w in operands]
        if any(_DELETES_ALL.fullmatch(s or "") for s in scripts):
            # `sed -i d F` keeps no line of F: truncation by another name.
            emptying = "sed -i deletes every line of"
            judgements = [emptied(j, w, emptying) for j, w in zip(judgements, operands, strict=True)]
        return worst(judgements) if judgements else Judgement(W, "sed edits")
    return Judgement(R, "sed prints edited text")


@judge("awk", "gawk", "mawk", "nawk")
def judge_awk(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "fvFiElW", ["file", "assign", "field-separator", "include", "exec", "load"])
    if "f" in opts.values or "file" in opts.values:
        return Judgement(U, f"{prog} runs a script file")
    included = [opts.values.get(k) for k in ("i", "include") if k in opts.values]
    if included == ["inplace"] and opts.operands[1:]:
        # gawk -i inplace rewrites each input file with what the program prints.
        return worst([write_to(w, f"{prog} -i inplace rewrites") for w in opts.operands[1:]])
    if included or opts.values.keys() & {"E", "exec", "l", "load"}:
        return Judgement(U, f"{prog} loads a program file or library", frozenset({"interpreter"}))
    if not opts.operands:
        return Judgement(U, f"{prog} without a program")
    program = opts.operands[0].value
    if program is None:
        return Judgement(U, f"{prog} program produced by an expansion")
    if re.search(r"\bsystem\s*\(|\|\s*getline|print[f]?[^;}]*\|\s*\"", program):
        return Judgement(D, f"{prog} runs shell commands", frozenset({"interpreter"}))
    target = re.search(r"print[f]?[^;}]*?>>?\s*(\"[^\"]*\"|\S+)", program)
    if target:
        path = target.group(1).strip('"')
        return write_to(Word(path if target.group(1).startswith('"') else None, path), f"{prog} writes to")
    return Judgement(R, f"{prog} prints text")


@judge("sort", "uniq")
def judge_sort(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "otkSTn" if prog == "sort" else "", ["output", "key", "temporary-directory"])
    out = opts.values.get("o") or opts.values.get("output")
    if prog == "sort" and any((w.value or "--compress-program").startswith("--compress-program") for w in args):
        return Judgement(U, "sort --compress-program names a program to run", frozenset({"interpreter"}))
    if prog == "sort" and ("o" in opts.values or "output" in opts.values):
        target = Word(out, out or "$?")
        judgement = write_to(target, "sort writes to")
        inputs = [w.value for w in opts.operands]
        if inputs and all(v in EMPTY_SOURCES for v in inputs):
            judgement = emptied(judgement, target, "sort of nothing empties")
        return judgement
    if prog == "uniq" and len(opts.operands) >= 2:
        return write_to(opts.operands[1], "uniq writes to")
    return Judgement(R, f"{prog} prints text")


@judge(*name_set("tar zip unzip gzip gunzip xz unxz bzip2 bunzip2 zstd 7z zcat bzcat xzcat zless zgrep"))
def judge_archive(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = [w.value or "" for w in args]
    hook = _archive_hook(prog, values)
    if hook is not None:
        return Judgement(U, f"{prog} {hook} names a program to run", frozenset({"interpreter"}))
    if prog == "tar":
        first = values[0] if values else ""
        letters = set(first.lstrip("-")) if first and not first.startswith("--") else set()
        letters |= {c for v in values if v.startswith("-") and not v.startswith("--") for c in v[1:]}
        longs = {v for v in values if v.startswith("--")}
        if "t" in letters or "--list" in longs:
            return Judgement(R, "tar lists an archive")
        if "x" in letters or "--extract" in longs or "--get" in longs:
            into = [values[i + 1] for i, v in enumerate(values[:-1]) if v in ("-C", "--directory")]
            into += [v.partition("=")[2] for v in values if v.startswith("--directory=")]
            if any(is_system_path(v) for v in into):
                return Judgement(D, "tar extracts over a system path")
            # Members named on the command line are written where they are named (`tar xf a.tar .claude/settings.json`).
            members = names_protected([Word(v, v) for v in values[1:] if v not in into])
            if members is not None:
                return Judgement(D, f"tar extracts {members}", frozenset({"protected-target"}))
            return extracting(Judgement(W, "tar extracts files"), into)
        if "c" in letters or "r" in letters or "u" in letters or "--create" in longs:
            return Judgement(W, "tar writes an archive")
        return Judgement(U, "tar mode not understood")
    if prog in ("unzip",) and "-l" in values:
        return Judgement(R, "unzip lists an archive")
    if prog in ("unzip",):
        into = [values[i + 1] for i, v in enumerate(values[:-1]) if v == "-d"]
        return extracting(Judgement(W, f"{prog} writes files"), into)
    if prog == "7z" and values and values[0] in ("l", "t", "h", "i"):
        return Judgement(R, "7z lists or tests an archive")
    if prog == "7z":
        # 7z spells the output folder glued to its option: `-o.claude`.
        into = [v[2:] for v in values if v.startswith("-o") and len(v) > 2]
        return extracting(Judgement(W, f"{prog} writes files"), into)
    if prog in ("zcat", "bzcat", "xzcat", "zless", "zgrep") or (
        prog in ("gzip", "gunzip", "xz", "bzip2", "zstd")
        and set(values) & {"-c", "-l", "--stdout", "-t", "--list", "--test"}
    ):
        return Judgement(R, f"{prog} prints")
    return Judgement(W, f"{prog} writes files")


#: tar options whose value is a program tar runs (GTFOBins: `--checkpoint-action=exec=sh`).
_TAR_RUNS = (
    "--checkpoint-action",
    "--to-command",
    "--use-compress-program",
    "--rsh-command",
    "--info-script",
    "--new-volume-script",
    "--rmt-command",
)


def _archive_hook(prog: str, values: list[str]) -> str | None:
    """The option that makes an archiver run a program of the caller's choosing, or None."""
    for v in values:
        if prog == "tar" and (
            v.startswith(_TAR_RUNS) or (v.startswith("-") and not v.startswith("--") and set(v[1:]) & {"I", "F"})
        ):
            return v
        if prog == "zip" and (v == "-TT" or v.startswith("--unzip-command")):
            return v
    return None


def extracting(judgement: Judgement, into: list[str]) -> Judgement:
    """Extracting an archive into a directory that holds protected paths may overwrite them."""
    why, _ = removal([Word(v, v) for v in into])
    if why is not None:
        return Judgement(D, f"{judgement.reason} into {why}", frozenset({"protected-target"}))
    return judgement


@judge("xxd")
def judge_xxd(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "cglosn", ["cols", "len", "seek", "name"])
    if len(opts.operands) >= 2:
        return write_to(opts.operands[1], f"{prog} writes to")
    return Judgement(R, f"{prog} prints a hex dump")


@judge("less", "more", "most", "man")
def judge_pager(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """less/more `+cmd` and man `-P`/`--pager` run commands of the caller's choosing."""
    for j, word in enumerate(args):
        value = word.value
        if value is None or value.startswith(("+", "-H")) or value in ("-P", "--pager", "--html"):
            return Judgement(U, f"{prog} {word.show} may run a command")
        if value.startswith(("--pager=", "--html=", "-P")):
            return Judgement(U, f"{prog} {word.show} may run a command")
        if prog == "less" and (value.startswith(("-o", "-O", "--log-file", "--LOG-FILE"))):
            # less -o FILE copies what it shows into FILE (-O overwrites without asking).
            glued = value.partition("=")[2] if value.startswith("--") else value[2:]
            log = glued or (args[j + 1].value if j + 1 < len(args) else None)
            return write_to(Word(log, log or word.text), "less logs to")
    return Judgement(R, f"{prog} only reads")


@judge("tree")
def judge_tree(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """tree -o FILE writes the listing to FILE."""
    opts = parse_opts(args, "oLPIH", ["filelimit", "timefmt", "charset"])
    if "o" in opts.values:
        out = opts.values["o"]
        return write_to(Word(out, out or "$?"), "tree writes to")
    return Judgement(R, "tree lists files")


@judge("rg")
def judge_rg(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """rg --pre COMMAND runs COMMAND on every file it searches."""
    for word in args:
        if word.value is not None and (word.value == "--pre" or word.value.startswith("--pre=")):
            return Judgement(U, f"rg {word.show} runs a program on every file", frozenset({"interpreter"}))
    return Judgement(R, "rg only reads")


@judge("yq")
def judge_yq(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """yq -i edits its files in place; otherwise it prints."""
    if not has_flag(args, "i", ("inplace",)):
        return Judgement(R, "yq prints")
    operands = parse_opts(args, "oIpn", ["output-format", "input-format", "indent"]).operands
    if operands and operands[0].value in ("e", "eval", "ea", "eval-all"):
        operands = operands[1:]
    files = operands[1:]
    judgements = [write_to(w, "yq edits") for w in files]
    return worst(judgements) if judgements else Judgement(W, "yq edits files in place")
