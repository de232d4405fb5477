"""Judges of the host: services, processes, power, cron, firewall, accounts, mounts, packages, logs, network."""

from __future__ import annotations

import re

from interlock.classify import privilege
from interlock.classify.programs.base import (
    D,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    Verbs,
    W,
    Word,
    discloses,
    first_operand,
    has_flag,
    judge,
    lit,
    name_set,
    parse_opts,
)
from interlock.classify.programs.targets import LINE, names_protected
from interlock.classify.programs.wrappers import environment_shown

SYSTEMCTL = Verbs(
    read=name_set(
        """
        status show cat list-units list-unit-files list-timers list-sockets list-dependencies list-jobs
        list-machines is-active is-enabled is-failed is-system-running get-default help show-environment
        """
    ),
    write=name_set(
        """
        start enable reload daemon-reload daemon-reexec reenable preset link set-property edit revert unmask
        """
    ),
    destructive=name_set(
        """
        stop restart try-restart reload-or-restart disable mask kill isolate reset-failed clean freeze
        default rescue emergency
        """
    ),
)
#: systemctl verbs that take the whole host down.
_SYSTEMCTL_POWER = name_set("poweroff reboot halt kexec suspend hibernate hybrid-sleep soft-reboot")


@judge("systemctl")
def judge_systemctl(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    sub, rest = first_operand(
        args, "HMpPtno", ["host", "machine", "property", "type", "state", "signal", "lines", "output"]
    )
    if sub is None:
        return Judgement(U, "systemctl subcommand produced by an expansion")
    risk = SYSTEMCTL.risk(sub)
    if risk is R or sub == "":
        return Judgement(R, f"systemctl {sub or 'list-units'} reads")
    if risk is W:
        return Judgement(W, f"systemctl {sub} {' '.join(w.show for w in rest)}".rstrip())
    if risk is D:
        return Judgement(D, f"systemctl {sub} {' '.join(w.show for w in rest)} interrupts a service".replace("  ", " "))
    if sub in _SYSTEMCTL_POWER:
        return Judgement(D, f"systemctl {sub} takes the host down", frozenset({"mass"}))
    return Judgement(U, f"systemctl {sub} not understood")


@judge("service")
def judge_service(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, "service argument produced by an expansion")
    if not values or values[0] in ("--status-all", "--help", "--version"):
        return Judgement(R, "service lists services")
    action = values[1] if len(values) > 1 else ""
    if action in ("status", ""):
        return Judgement(R, f"service {values[0]} status")
    if action in ("start", "reload", "force-reload"):
        return Judgement(W, f"service {values[0]} {action}")
    if action in ("stop", "restart", "try-restart", "condrestart"):
        return Judgement(D, f"service {values[0]} {action} interrupts a service")
    return Judgement(U, f"service {values[0]} {action} not understood")


@judge("kill", "pkill", "killall", "killall5", "pgrep", "pidof", "skill")
def judge_kill(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = [w.value for w in args]
    if prog == "kill" and (not values or values[0] in ("-l", "-L", "--list") or "-0" in values or "-s0" in values):
        return Judgement(R, "kill lists signals or checks a process exists")
    if prog in ("pgrep", "pidof"):
        return Judgement(R, f"{prog} finds processes")
    mass = prog in ("killall", "killall5") or "-1" in values or any(v in ("-u", "--user") for v in values)
    return Judgement(D, f"{prog} stops processes", frozenset({"mass"}) if mass else frozenset())


@judge("shutdown", "reboot", "halt", "poweroff", "init", "telinit")
def judge_power(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = [w.value for w in args]
    if prog == "shutdown" and "-c" in values:
        return Judgement(W, "shutdown -c cancels a shutdown")
    if prog in ("init", "telinit") and values and values[0] not in ("0", "6", "1", "s", "S"):
        return Judgement(W, f"{prog} {values[0]} changes the runlevel")
    return Judgement(D, f"{prog} takes the host down", frozenset({"mass"}))


@judge("crontab")
def judge_crontab(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "u")
    if "r" in opts.flags:
        return Judgement(D, "crontab -r deletes the crontab", frozenset({"irreversible"}))
    if "l" in opts.flags:
        return Judgement(R, "crontab -l lists jobs")
    if "e" in opts.flags:
        return Judgement(U, "crontab -e edits interactively")
    return Judgement(D, "crontab FILE replaces the whole crontab", frozenset({"replace"}))


@judge(
    *name_set(
        """
    iptables ip6tables iptables-legacy iptables-nft iptables-save ip6tables-save iptables-restore
    ip6tables-restore nft ufw
    """
    )
)
def judge_firewall(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = [w.value or "" for w in args]
    if prog in ("iptables", "ip6tables", "iptables-legacy", "iptables-nft"):
        flags = set(values)
        if flags & {"-F", "--flush", "-X", "--delete-chain", "-Z", "--zero"}:
            return Judgement(D, f"{prog} flushes rules", frozenset({"mass"}))
        if flags & {"-D", "--delete"}:
            return Judgement(D, f"{prog} deletes a rule")
        if flags & {"-P", "--policy"}:
            return Judgement(D, f"{prog} changes a chain policy")
        if flags & {"-A", "--append", "-I", "--insert", "-N", "--new-chain", "-R", "--replace", "-E"}:
            return Judgement(W, f"{prog} adds a rule")
        if flags & {"-L", "--list", "-S", "--list-rules", "-C", "--check", "-h", "--help", "--version"}:
            return Judgement(R, f"{prog} lists rules")
        return Judgement(U, f"{prog} {' '.join(values)} not understood")
    if prog in ("iptables-save", "ip6tables-save"):
        return Judgement(R, f"{prog} prints rules")
    if prog in ("iptables-restore", "ip6tables-restore"):
        return Judgement(D, f"{prog} replaces the rules", frozenset({"replace", "mass"}))
    if prog == "nft":
        words = [v for v in values if not v.startswith("-")]
        verb = words[0] if words else ""
        if verb in ("list", "describe", "monitor") or "-c" in values or "--check" in values:
            return Judgement(R, f"nft {verb}")
        if verb in ("flush", "delete", "destroy", "reset"):
            return Judgement(D, f"nft {verb}", frozenset({"mass"}) if verb == "flush" else frozenset())
        if verb in ("add", "insert", "create", "replace", "rename"):
            return Judgement(W, f"nft {verb}")
        if "-f" in values:
            return Judgement(U, "nft runs a rules file")
        return Judgement(U, f"nft {verb} not understood")
    words = [v for v in values if not v.startswith("-")]
    verb = words[0] if words else ""
    if verb in ("status", "show", "version", "app", "help"):
        return Judgement(R, f"ufw {verb}")
    if verb in ("disable", "reset", "delete", "deny", "reject"):
        return Judgement(D, f"ufw {verb}", frozenset({"mass"}) if verb in ("reset", "disable") else frozenset())
    if verb in ("allow", "limit", "enable", "reload", "insert", "route", "default", "logging"):
        return Judgement(W, f"ufw {verb}")
    return Judgement(U, f"ufw {verb} not understood")


@judge(
    *name_set(
        """
    userdel deluser groupdel delgroup useradd adduser groupadd addgroup passwd chpasswd usermod gpasswd
    visudo chage
    """
    )
)
def judge_users(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    if prog in ("userdel", "deluser", "groupdel", "delgroup"):
        opts = parse_opts(args)
        tags = {"irreversible"} | ({"mass"} if opts.flags & {"r", "remove", "remove-home"} else set())
        return Judgement(D, f"{prog} deletes an account", frozenset(tags))
    priv = frozenset({"privilege"})
    if prog == "visudo":
        if has_flag(args, "c", ("check",)):
            return Judgement(R, "visudo -c checks the sudoers files")
        return Judgement(D, "visudo edits who may act as root", priv)
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion", priv)
    granted = admin_group(prog, args)
    if granted is not None:
        return Judgement(D, f"{prog} puts an account in {granted}: administrator power", priv)
    if prog == "passwd" and has_flag(args, "d", ("delete",)):
        # An account without a password is open to anyone who can reach a login prompt or `su`.
        return Judgement(D, "passwd -d removes an account's password", priv)
    if prog in ("passwd", "chpasswd", "usermod", "gpasswd", "chage"):
        return Judgement(W, f"{prog} changes accounts or credentials", priv)
    return Judgement(W, f"{prog} creates an account", priv)


#: Unix groups whose members are root in all but name (sudo, the docker socket, raw disks …).
ADMIN_GROUPS = name_set("sudo wheel admin root adm docker lxd lxc disk shadow kmem sudoers libvirt")


def admin_group(prog: str, args: list[Word]) -> str | None:
    """The administrator group (or uid 0) an account change grants, or None."""
    opts = parse_opts(args, "bcdefgGklpsuRPZvwVWKAM" if prog != "gpasswd" else "adrRAM", ["groups", "gid", "uid"])
    operands = [w.value for w in opts.operands if w.value is not None]
    if (opts.values.get("u") or opts.values.get("uid") or "").strip() == "0":
        return "uid 0 (root)"
    found: list[str] = []
    for key in ("G", "groups", "g", "gid"):
        found += (opts.values.get(key) or "").split(",")
    if prog == "gpasswd" or (prog in ("adduser", "addgroup") and len(operands) == 2):
        found += operands[-1:]
    return next((g for g in found if g and (g.lower() in ADMIN_GROUPS or privilege.is_admin_name(g))), None)


@judge("mount", "umount", "swapon", "swapoff")
def judge_mount(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    if prog in ("umount", "swapoff"):
        return Judgement(D, f"{prog} detaches a filesystem")
    if not args or (
        all(w.value in ("-l", "-t", "--list") or (w.value or "").startswith("-t") for w in args)
        and len(args) <= 2
        and not any((w.value or "").startswith("/") for w in args)
    ):
        return Judgement(R, f"{prog} lists mounts")
    why = names_protected(parse_opts(args, "tooLUO").operands[1:])
    if why is not None:
        # Mounting over a directory hides what is in it: a new `.claude/` is new settings.
        return Judgement(D, f"{prog} mounts over {why}", frozenset({"privilege", "protected-target"}))
    return Judgement(W, f"{prog} attaches a filesystem", frozenset({"privilege"}))


#: Package managers' verbs (apt, pip, npm, cargo …): installing is write, removing destructive.
PACKAGES = Verbs(
    read=name_set(
        """
        list show search info freeze check policy madison depends rdepends outdated view ls audit help
        version query files provides whatprovides history doctor config inspect why
        """
    ),
    write=name_set(
        """
        install add i update upgrade full-upgrade dist-upgrade reinstall ci build wheel download
        makecache link publish sync lock init refresh
        """
    ),
    destructive=name_set("remove purge uninstall autoremove erase prune unlink clean autoclean rm r un"),
)


#: Package manager settings that hold credentials (`//registry.npmjs.org/:_authToken`, `_auth`, `_password`).
_AUTH_SETTING = re.compile(r"_auth|_password|authtoken|token$", re.I)
#: `config` verbs that change settings (`npm config set`, `pip config unset`, `yarn config delete`).
_CONFIG_CHANGES = name_set("set unset delete rm edit add remove")
#: yarn and pnpm run a package.json script of that name for a verb that is not theirs (`yarn build`).
_SCRIPT_NAMED = name_set("build test start lint dev serve deploy clean format typecheck")


#: apt `-o` settings that name a program to run (hooks, pagers, compressors, methods).
_APT_RUNS = re.compile(r"(invoke|hook|pager|editor|dir::bin|compress|exec|command|binary|methods?::|::path)", re.I)
#: Manifests whose install runs code they name: written earlier in the same line, they are the agent's.
_MANIFESTS = {
    "bundle": ("Gemfile", "gems.rb"),
    "npm": ("package.json", ".npmrc"),
    "pnpm": ("package.json", ".npmrc"),
    "yarn": ("package.json", ".yarnrc", ".yarnrc.yml"),
    "pip": ("requirements.txt", "setup.py", "pyproject.toml", "pip.conf"),
    "pip3": ("requirements.txt", "setup.py", "pyproject.toml", "pip.conf"),
    "uv": ("requirements.txt", "pyproject.toml"),
    "poetry": ("pyproject.toml",),
    "composer": ("composer.json",),
    "cargo": ("Cargo.toml", "build.rs"),
}
_INSTALL = name_set("install i add ci sync update upgrade reinstall")
#: What a package operand looks like when it is a local file, a directory or a repository: its own
#: install scripts (maintainer scripts, setup.py, npm lifecycle scripts, gem extensions) run.
_LOCAL_PACKAGE = re.compile(
    r"^(\.{1,2}(/|$)|/|~/|file:|git\+|hg\+|svn\+|bzr\+|git:|github:)|\.(deb|rpm|snap|gem|tgz|tar\.gz|tar\.bz2|zip)$"
)


def package_hook(prog: str, values: list[str]) -> str | None:
    """Why a package command runs code of the caller's choosing (GTFOBins' categories), or None."""
    flags = [v for v in values if v.startswith("-")]
    operands = [v for v in values if not v.startswith("-")]
    if prog in ("apt", "apt-get"):
        for i, v in enumerate(values):
            setting = values[i + 1] if v == "-o" and i + 1 < len(values) else v[2:] if v.startswith("-o") else ""
            if _APT_RUNS.search(setting):
                return f"-o {setting} names a program to run"
            if v in ("-c", "--config-file") or v.startswith("--config-file="):
                return "reads its settings from a file we cannot see"
    if prog == "rpm":
        macro = next((values[i + 1] for i, v in enumerate(values[:-1]) if v in ("--eval", "-E")), "")
        macro = macro or next((v.partition("=")[2] for v in values if v.startswith("--eval=")), "")
        if "%(" in macro or "%{lua" in macro or "--pipe" in values:
            return "a macro or pipe runs a shell command"
        if any(re.match(r"^-[iUF]", v) for v in flags) or set(flags) & {"--install", "--upgrade", "--freshen"}:
            return "installs a package file: its scripts run"
    installing = set(flags) & {"--install", "--unpack"} or any(re.match(r"^-[a-zA-Z]*i", v) for v in flags)
    if prog == "dpkg" and installing:
        return "installs a package file: its maintainer scripts run"
    if prog in ("pip", "pip3") and operands[:1] == ["config"] and ("edit" in operands or "--editor" in flags):
        return "pip config runs an editor"
    verb = operands[0] if operands else ""
    if verb in _INSTALL:
        if prog == "snap" and "--dangerous" in flags:
            return "installs an unsigned snap: its hooks run"
        if prog in ("pip", "pip3", "uv") and set(flags) & {"-e", "--editable"}:
            return "installs a local project: its build runs"
        local = next((v for v in operands[1:] if _LOCAL_PACKAGE.search(v) or _scoped_repo(prog, v)), None)
        if local is not None:
            return f"installs {local}: its install scripts run"
        written = LINE.get().written
        manifest = next((m for m in _MANIFESTS.get(prog, ()) if written is not None and m in written), None)
        if manifest is not None:
            return f"installs from {manifest}, written in the same command line"
    return None


def _scoped_repo(prog: str, operand: str) -> bool:
    """`npm install user/repo` installs a GitHub repository (`@scope/pkg` is a registry package)."""
    return prog in ("npm", "pnpm", "yarn") and "/" in operand and not operand.startswith("@") and "://" not in operand


#: Package managers' real dry-run options: (short letters, long names, how they are spelled).
_DRY_RUN = {
    "apt-get": ("s", ("simulate", "just-print", "dry-run", "recon", "no-act"), "-s"),
    "apt": ("s", ("simulate", "just-print", "dry-run", "recon", "no-act"), "-s"),
    "dpkg": ("", ("dry-run", "no-act", "simulate"), "--dry-run"),
    "npm": ("", ("dry-run",), "--dry-run"),
}


@judge(
    *name_set(
        """
    apt apt-get yum dnf zypper apk pacman pip pip3 npm pnpm yarn gem cargo go brew snap dpkg rpm npx
    pipx uv conda poetry bundle
    """
    )
)
def judge_packages(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    hook = package_hook(prog, values)
    if hook is not None:
        return Judgement(U, f"{prog}: {hook}", frozenset({"interpreter"}))
    dry = _DRY_RUN.get(prog)
    if dry is not None and has_flag(args, dry[0], dry[1]):
        return Judgement(R, f"{prog} only simulates ({dry[2]})")
    if prog == "rpm" and any(v in ("--eval", "-E") or v.startswith("--eval=") for v in values):
        return Judgement(R, "rpm --eval expands a macro")
    if prog in ("dpkg", "rpm"):
        flags = {v for v in values if v.startswith("-")}
        if flags & name_set("-l -L -s -S --list --status --search -q -qa -ql -qi --get-selections --version"):
            return Judgement(R, f"{prog} queries packages")
        if flags & {"-r", "-P", "--remove", "--purge", "-e", "--erase"}:
            return Judgement(D, f"{prog} removes packages")
        return Judgement(W, f"{prog} installs packages", frozenset({"privilege"}))
    words = [v for v in values if not v.startswith("-")]
    if prog in ("npx", "pipx") and words[:1] != ["list"]:
        return Judgement(U, f"{prog} runs a downloaded package", frozenset({"network"}))
    verb = words[0] if words else ""
    if not verb:
        return Judgement(R if any(v in ("--version", "-v", "-V", "--help", "-h") for v in values) else U, f"{prog}")
    risk = PACKAGES.risk(verb)
    if verb == "config" and words[1:2] == ["get"] and any(_AUTH_SETTING.search(w) for w in words[2:]):
        return discloses(f"{prog} config get prints a registry credential")
    if verb == "config" and set(words[1:2]) & _CONFIG_CHANGES:
        # `npm config set registry …`: every later install comes from where the agent said.
        return Judgement(W, f"{prog} config {words[1]} changes the package manager's settings")
    if prog in ("yarn", "pnpm") and verb in _SCRIPT_NAMED:
        return Judgement(U, f"{prog} {verb} runs the project's own {verb} script")
    if risk is R:
        return Judgement(R, f"{prog} {verb} reads")
    if risk is D:
        return Judgement(D, f"{prog} {verb} removes packages")
    if risk is W:
        return Judgement(W, f"{prog} {verb} changes installed software", frozenset({"network"}))
    if verb in ("run", "exec", "x", "test", "start"):
        return Judgement(U, f"{prog} {verb} runs project scripts")
    return Judgement(U, f"{prog} {verb} not understood")


@judge("journalctl", "dmesg")
def judge_logs(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """journalctl and dmesg read logs, unless told to delete or clear them."""
    values = [w.value or "" for w in args]
    if prog == "journalctl":
        if any(v.startswith(("--vacuum", "--rotate", "--flush", "--relinquish-var", "--setup-keys")) for v in values):
            return Judgement(D, "journalctl deletes or rotates logs", frozenset({"irreversible"}))
        return Judgement(R, "journalctl reads logs")
    if any(v in ("-c", "-C", "--clear", "--read-clear", "-D", "-E", "--console-off", "--console-on") for v in values):
        return Judgement(W, "dmesg clears the kernel log or changes the console")
    return Judgement(R, "dmesg reads the kernel log")


IP = Verbs(
    read=name_set("show list ls lst get help monitor"),
    write=name_set("add append"),
    destructive=name_set("del delete flush set change replace down"),
)


@judge("ip")
def judge_ip(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """`ip OBJECT [VERB …]`: showing is read; adding is write; deleting, flushing or setting
    (`ip link set eth0 down`) can cut the host off the network."""
    values = lit(args)
    if values is None:
        return Judgement(U, "ip argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    verb = words[1] if len(words) > 1 else ""
    risk = IP.risk(verb)
    if len(words) <= 1 or risk is R:
        return Judgement(R, f"ip {' '.join(words[:2])} reads".replace("  ", " "))
    if risk is W:
        return Judgement(W, f"ip {words[0]} {verb} changes the network", frozenset({"privilege"}))
    if risk is D:
        return Judgement(D, f"ip {words[0]} {verb} changes or removes network settings")
    return Judgement(U, f"ip {' '.join(words[:2])} not understood")


#: A variable's expansion in a word: `$NAME`, `${NAME}`, `${NAME:-x}` (the name is what we judge).
_EXPANDED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@judge("echo", "printf")
def judge_echo(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """`echo $AWS_SECRET_ACCESS_KEY` prints a credential as `printenv AWS_SECRET_ACCESS_KEY` does; only
    words with an expansion are looked at (`'$TOKEN'` in single quotes is the text itself)."""
    names = [name for w in args if w.value is None for name in _EXPANDED.findall(w.text)]
    if names:
        return environment_shown(prog, names)
    return Judgement(R, f"{prog} only reads")


@judge("set")
def judge_set(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """`set` alone prints every shell variable with its value (the session's tokens); with options or
    words it sets options or the positional parameters."""
    if not args:
        return environment_shown(prog)
    return Judgement(R, "set changes shell options or positional parameters")


#: ps options that take a value (`-C apache`, `-o pid,etime`): their value is no BSD option word.
_PS_TAKES = frozenset("CGgOopqstUu")


@judge("ps")
def judge_ps(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """`ps e`, `ps eww`, `ps auxe`: the BSD `e` option prints each process's environment after its
    command line: the tokens of every process we may see, like `cat /proc/*/environ`."""
    for index, word in enumerate(args):
        value = word.value or ""
        before = args[index - 1].value or "" if index else ""
        takes = before.startswith("-") and not before.startswith("--") and before[-1:] in _PS_TAKES
        if not takes and value.isalpha() and "e" in value:
            return environment_shown("ps e")
    return Judgement(R, "ps only reads")


@judge("printenv")
def judge_printenv(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    names = [w.value if w.value is not None else w.text for w in args if not (w.value or "").startswith("-")]
    return environment_shown(prog, names or None)


@judge("date", "hostname")
def judge_date(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = [w.value for w in args]
    if prog == "date" and any(v is not None and (v.startswith("-s") or v.startswith("--set")) for v in values):
        return Judgement(W, "date sets the clock", frozenset({"privilege"}))
    if prog == "hostname" and any(v is not None and not v.startswith("-") for v in values):
        return Judgement(W, "hostname renames the host", frozenset({"privilege"}))
    return Judgement(R, f"{prog} prints")


@judge("setcap", "getcap", "ssh-copy-id")
def judge_grants(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """File capabilities and ssh logins: powers that outlive the command."""
    priv = frozenset({"privilege"})
    if prog == "getcap":
        return Judgement(R, "getcap lists file capabilities")
    if prog == "setcap":
        if has_flag(args, "rv"):
            return Judgement(W, "setcap removes or verifies capabilities", priv)
        return Judgement(D, "setcap gives a program root's powers (capabilities)", priv)
    return Judgement(D, "ssh-copy-id adds a key to a remote authorized_keys: a new login", priv | {"network"})
