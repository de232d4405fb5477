"""Judges of database clients and tools: SQL handed to psql/mysql/sqlite3 goes to the sql classifier."""

from __future__ import annotations

import fnmatch
import re

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
    judge,
    lit,
    name_set,
    parse_opts,
    worst,
)
from interlock.classify.programs.targets import (
    write_to,
)
from interlock.model import Kind, Risk

_SQL_DIALECT = {"psql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite3": "sqlite"}


@judge(*_SQL_DIALECT)
def judge_sql_client(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    dialect = _SQL_DIALECT[prog]
    sql: list[str] = []
    if prog == "psql":
        opts = parse_opts(
            args,
            "cdfhpUvoLTP",
            name_set("command dbname file host port username set variable output log-file"),
        )
        if opts.flags & {"l", "list", "version", "V", "help"}:
            return Judgement(R, "psql lists databases")
        script = opts.values.get("f") or opts.values.get("file")
        if "f" in opts.values or "file" in opts.values:
            return Judgement(U, f"psql runs the script file {script}")
        sql = [v for k, v in opts.values.items() if k in ("c", "command") and v is not None]
        if any(w.value is None for w in args):
            for k in ("c", "command"):
                if k in opts.values and opts.values[k] is None:
                    return Judgement(U, "psql -c with SQL produced by an expansion")
        _collect_repeated(args, ("-c", "--command"), sql)
    elif prog in ("mysql", "mariadb"):
        opts = parse_opts(args, "ehuPDS", ["execute", "host", "user", "port", "database", "socket"])
        if opts.flags & {"version", "V", "help"}:
            return Judgement(R, f"{prog} prints its version")
        for k in ("e", "execute"):
            if k in opts.values:
                if opts.values[k] is None:
                    return Judgement(U, f"{prog} -e with SQL produced by an expansion")
                sql.append(opts.values[k] or "")
    else:
        opts = parse_opts(args, "", ["cmd", "separator", "nullvalue"])
        if opts.flags & {"version", "help"}:
            return Judgement(R, "sqlite3 prints its version")
        if any(w.value is None for w in opts.operands[1:]):
            return Judgement(U, "sqlite3 SQL produced by an expansion")
        sql = [w.value for w in opts.operands[1:] if w.value is not None]
        if opts.values.get("cmd"):
            sql.insert(0, opts.values["cmd"] or "")
    if sql:
        nested = run.delegate(Kind.sql, {"sql": "\n".join(sql)}, dialect)
        return Judgement(nested.risk, f"{prog} runs SQL: {nested.reason}", nested.tags, nested.paths, nested.nested)
    if stdin.text is not None:
        nested = run.delegate(Kind.sql, {"sql": stdin.text}, dialect)
        return Judgement(nested.risk, f"{prog} runs SQL from {stdin.origin}: {nested.reason}", nested.tags | stdin.tags)
    if stdin.origin == "tty":
        return Judgement(U, f"{prog} opens an interactive session")
    return Judgement(U, f"{prog} runs SQL from {stdin.source or stdin.origin}")


def _collect_repeated(args: list[Word], names: tuple[str, ...], into: list[str]) -> None:
    """psql accepts several -c; parse_opts keeps only the last one."""
    found: list[str] = []
    for i, w in enumerate(args[:-1]):
        if w.value in names and args[i + 1].value is not None:
            found.append(args[i + 1].value or "")
    for w in args:
        if w.value is not None and w.value.startswith("--command="):
            found.append(w.value.partition("=")[2])
        elif w.value is not None and w.value.startswith("-c") and len(w.value) > 2:
            found.append(w.value[2:])
    if len(found) > len(into):
        into[:] = found


_REDIS_DOES = {R: "reads", W: "writes", D: "deletes or stops"}
REDIS = Verbs(
    read=name_set(
        """
        GET MGET KEYS SCAN INFO PING TTL PTTL TYPE EXISTS HGET HGETALL HKEYS HVALS HLEN HEXISTS HMGET LRANGE
        LLEN LINDEX SMEMBERS SCARD SISMEMBER ZRANGE ZCARD ZSCORE ZRANK ZREVRANGE DBSIZE STRLEN GETRANGE ECHO
        TIME LASTSAVE ROLE MEMORY XLEN XRANGE XINFO SLOWLOG SSCAN HSCAN ZSCAN OBJECT PUBSUB COMMAND LOLWUT
        """
    ),
    write=name_set(
        """
        SET SETEX SETNX PSETEX MSET HSET HMSET HSETNX LPUSH RPUSH LINSERT LSET SADD ZADD INCR INCRBY DECR
        DECRBY INCRBYFLOAT APPEND EXPIRE PEXPIRE EXPIREAT PERSIST PUBLISH XADD GETSET SETRANGE HINCRBY
        ZINCRBY PFADD BGSAVE SAVE BGREWRITEAOF
        """
    ),
    destructive=name_set(
        """
        FLUSHALL FLUSHDB DEL UNLINK SHUTDOWN DEBUG RENAME RENAMENX HDEL SREM ZREM LREM LPOP RPOP SPOP LTRIM
        ZREMRANGEBYSCORE ZREMRANGEBYRANK GETDEL XDEL XTRIM MIGRATE MOVE SWAPDB SLAVEOF REPLICAOF FAILOVER
        RESTORE
        """
    ),
)


@judge("redis-cli", "valkey-cli")
def judge_redis(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    takes_value = {"-h", "-p", "-a", "-n", "-u", "-s", "-r", "-i", "-d", "--user", "--pass", "--tls-cert"}
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Judgement(U, "redis-cli argument produced by an expansion")
        if v in ("--scan", "--bigkeys", "--memkeys", "--stat", "--latency", "--hotkeys", "--version"):
            return Judgement(R, f"redis-cli {v}")
        if v in takes_value:
            i += 2
            continue
        if v.startswith("-"):
            i += 1
            continue
        break
    if i >= len(args):
        if stdin.origin != "tty" and stdin.text is not None:
            lines = [ln.split() for ln in stdin.text.splitlines() if ln.strip()]
            judgements = [_redis_command([Word(x, x) for x in ln]) for ln in lines]
            return worst(judgements) if judgements else Judgement(R, "redis-cli with empty input")
        return Judgement(U, "redis-cli opens an interactive session")
    return _redis_command(args[i:])


#: The settings CONFIG GET prints passwords from (its argument is a glob: `*`, `*pass*`, `master*`).
_REDIS_PASSWORDS = ("requirepass", "masterauth", "masteruser")


def _redis_command(words: list[Word]) -> Judgement:
    name = (words[0].value or "").upper()
    sub = (words[1].value or "").upper() if len(words) > 1 else ""
    if words[0].value is None:
        return Judgement(U, "redis command produced by an expansion")
    if name in ("FLUSHALL", "FLUSHDB"):
        return Judgement(D, f"redis {name} deletes every key", frozenset({"mass", "irreversible"}))
    if name == "CONFIG":
        patterns = [(w.value or "*").lower() for w in words[2:]]  # an expansion may be any pattern
        matched = [p for p in patterns if any(fnmatch.fnmatchcase(name, p) for name in _REDIS_PASSWORDS)]
        if sub == "GET" and matched:
            return discloses(f"redis CONFIG GET {matched[0]} prints the server's passwords")
        return Judgement(R if sub == "GET" else D, f"redis CONFIG {sub}")
    if name == "ACL" and sub in ("LIST", "GETUSER"):
        return discloses(f"redis ACL {sub} prints users' password hashes")
    if name in ("CLIENT", "CLUSTER", "SCRIPT", "FUNCTION", "ACL", "MODULE"):
        read = sub in name_set("LIST INFO GETNAME ID NODES SLOTS SHARDS EXISTS WHOAMI USERS CAT")
        return Judgement(R if read else D, f"redis {name} {sub}")
    risk = REDIS.risk(name)
    if risk is not None:
        return Judgement(risk, f"redis {name} {_REDIS_DOES[risk]}")
    return Judgement(U, f"redis {name} not understood")


@judge(*name_set("dropdb dropuser createdb createuser pg_dump pg_dumpall mysqldump pg_restore"))
def judge_pg_tools(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    if prog in ("dropdb", "dropuser"):
        return Judgement(D, f"{prog} drops a {'database' if prog == 'dropdb' else 'role'}", frozenset({"irreversible"}))
    if prog in ("createdb", "createuser"):
        return Judgement(W, f"{prog} creates a {'database' if prog == 'createdb' else 'role'}")
    if prog in ("pg_dump", "pg_dumpall", "mysqldump"):
        opts = parse_opts(args, "fdhpUnNtTrF" if prog != "mysqldump" else "hupPrS", ["file", "result-file"])
        out = opts.values.get("f") or opts.values.get("file") or opts.values.get("r") or opts.values.get("result-file")
        if out:
            return write_to(Word(out, out), f"{prog} writes a dump to")
        return Judgement(R, f"{prog} dumps to standard output")
    if prog == "pg_restore":
        opts = parse_opts(args, "dfhpUnNtTIjL", ["dbname", "file"])
        if opts.flags & {"c", "clean"}:
            return Judgement(D, "pg_restore --clean drops objects before restoring", frozenset({"replace"}))
        if opts.flags & {"l", "list"}:
            return Judgement(R, "pg_restore lists an archive")
        return Judgement(W, "pg_restore restores into a database")
    return Judgement(U, f"{prog} not understood")


# --------------------------------------------------------------------------- kafka


#: kafka tool → (action option → risk); the first action option present decides.
_KAFKA_ACTIONS: dict[str, tuple[tuple[str, Risk], ...]] = {
    "kafka-topics": (("--delete", D), ("--create", W), ("--alter", W), ("--list", R), ("--describe", R)),
    "kafka-consumer-groups": (
        ("--delete", D),
        ("--delete-offsets", D),
        ("--reset-offsets", R),
        ("--list", R),
        ("--describe", R),
    ),
    "kafka-configs": (("--alter", W), ("--describe", R)),
    "kafka-reassign-partitions": (("--execute", W), ("--cancel", W), ("--verify", R), ("--generate", R)),
    "kafka-storage": (("format", D), ("info", R), ("random-uuid", R)),
}
#: kafka tools whose one job decides.
_KAFKA_TOOLS: dict[str, tuple[Risk, str]] = {
    "kafka-console-consumer": (R, "reads messages"),
    "kafka-console-producer": (W, "produces messages"),
    "kafka-delete-records": (D, "deletes records"),
    "kafka-leader-election": (W, "moves partition leaders"),
    "kafka-server-stop": (D, "stops a broker"),
    "kafka-server-start": (W, "starts a broker"),
    "kafka-log-dirs": (R, "describes log directories"),
    "kafka-broker-api-versions": (R, "lists API versions"),
    "kafka-get-offsets": (R, "reads offsets"),
    "kafka-metadata-quorum": (R, "describes the quorum"),
}
_KAFKA = sorted({*_KAFKA_ACTIONS, *_KAFKA_TOOLS, "kafka-acls", "kafka-run-class"})


@judge(*_KAFKA, *(name + ".sh" for name in _KAFKA))
def judge_kafka(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    tool = prog.removesuffix(".sh")
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    if tool in _KAFKA_TOOLS:
        risk, what = _KAFKA_TOOLS[tool]
        tags = frozenset({"irreversible"}) if risk is D and tool == "kafka-delete-records" else frozenset()
        return Judgement(risk, f"{prog} {what}", tags)
    if tool == "kafka-acls":
        return _kafka_acls(prog, values)
    for option, risk in _KAFKA_ACTIONS.get(tool, ()):
        if option in values:
            if tool == "kafka-consumer-groups" and option == "--reset-offsets" and "--execute" in values:
                return Judgement(D, f"{prog} --reset-offsets --execute replays or skips messages")
            tags = frozenset({"irreversible"}) if risk is D else frozenset()
            return Judgement(risk, f"{prog} {option}", tags)
    return Judgement(U, f"{prog} {' '.join(values[:3])} not understood")


def _kafka_acls(prog: str, values: list[str]) -> Judgement:
    priv = frozenset({"privilege"})
    if "--list" in values:
        return Judgement(R, f"{prog} --list")
    if "--remove" in values:
        return Judgement(D, f"{prog} --remove takes access away", priv)
    if "--add" in values:
        principals = [values[i + 1] for i, v in enumerate(values[:-1]) if v.endswith("-principal")]
        operations = [values[i + 1].lower() for i, v in enumerate(values[:-1]) if v == "--operation"]
        if any(p.endswith(":*") for p in principals) or {"all", "alter", "alterconfigs", "clusteraction"} & set(
            operations
        ):
            return Judgement(D, f"{prog} --add grants everyone or everything", priv)
        return Judgement(W, f"{prog} --add grants {', '.join(operations) or 'access'}", priv)
    return Judgement(U, f"{prog} not understood", priv)


# --------------------------------------------------------------------------- mongosh

#: mongo shell methods by risk; a call to any other method or function is `unknown`.
MONGO = Verbs(
    read=name_set(
        """
        find findOne countDocuments estimatedDocumentCount count distinct aggregate getCollectionNames
        getCollectionInfos listCollections stats explain getIndexes limit skip sort toArray pretty
        forEach map hasNext next itcount getName getSiblingDB getCollection getMongo serverStatus
        version hostInfo isMaster hello help getUsers getUser getRoles currentOp batchSize projection
        hint readPref maxTimeMS size dataSize storageSize totalIndexSize getDB getDBs listDatabases
        """
    ),
    write=name_set(
        """
        insertOne insertMany insert updateOne updateMany update replaceOne findOneAndUpdate
        findOneAndReplace bulkWrite createIndex createIndexes createCollection createView save
        """
    ),
    destructive=name_set(
        """
        deleteOne deleteMany remove drop dropDatabase dropIndex dropIndexes findOneAndDelete killOp
        shutdownServer dropUser dropAllUsers revokeRolesFromUser renameCollection
        """
    ),
)
#: Functions a mongo shell snippet may call on their own (`printjson(x)`, `ObjectId("…")`).
_MONGO_FUNCTIONS = name_set("print printjson quit exit sleep ObjectId ISODate Date NumberLong NumberInt UUID tojson")
_MONGO_PRIVILEGE = name_set("createUser updateUser grantRolesToUser grantPrivilegesToRole createRole updateRole")
_MONGO_ADMIN_ROLES = re.compile(
    r"\b(root|__system|dbOwner|userAdmin|userAdminAnyDatabase|clusterAdmin|dbAdminAnyDatabase|"
    r"readWriteAnyDatabase|restore|hostManager|clusterManager)\b"
)
_CALL = re.compile(r"(\.)?\s*([A-Za-z_$][\w$]*)\s*\(")
_HIDDEN_CALL = re.compile(r"\[\s*['\"`][^'\"`]*['\"`]\s*\]\s*\(|`|\beval\b|\bFunction\b|\bload\s*\(")
_MASS_FILTER = re.compile(r"\b(deleteMany|updateMany|remove|update)\(\s*\{\s*\}")


def judge_mongo_js(code: str) -> Judgement:
    """A mongo shell snippet: the riskiest method it calls; any call we do not know is `unknown`."""
    if _HIDDEN_CALL.search(code):
        return Judgement(U, "mongo shell code that calls by computed name, eval or template")
    judgements = [Judgement(R, "mongo shell reads")]
    for line in code.splitlines():
        if re.match(r"^\s*(show\s+\w+|use\s+\w+)\s*;?\s*$", line):
            continue
        for dot, name in _CALL.findall(line):
            if name in _MONGO_PRIVILEGE:
                admin = _MONGO_ADMIN_ROLES.search(code)
                risk = D if admin else W
                judgements.append(Judgement(risk, f"mongo {name}{' grants ' + admin.group(1) if admin else ''}", _PRIV))
                continue
            found = MONGO.risk(name) if dot else (R if name in _MONGO_FUNCTIONS else None)
            if found is None:
                judgements.append(Judgement(U, f"mongo {name}() is not judged"))
            elif found is not R:
                tags = frozenset({"irreversible"}) if name in ("drop", "dropDatabase") else frozenset()
                judgements.append(Judgement(found, f"mongo {name}", tags))
    if re.search(r"\$(out|merge)\b", code):
        judgements.append(Judgement(W, "mongo aggregate writes a collection ($out/$merge)"))
    top = worst(judgements)
    if _MASS_FILTER.search(code) and top.risk in (W, D):
        return top.with_tags("mass")
    return top


_PRIV = frozenset({"privilege"})


@judge("mongosh", "mongo")
def judge_mongosh(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    opts = parse_opts(args, "uph", name_set("eval file username password host port authenticationDatabase"))
    if opts.flags & {"version", "help"}:
        return Judgement(R, f"{prog} prints its version")
    if "f" in opts.flags or "file" in opts.flags:
        return Judgement(U, f"{prog} runs a script file")
    if any(w.value is None or w.value.endswith(".js") for w in opts.operands):
        return Judgement(U, f"{prog} runs a script file")
    if "eval" in opts.flags:
        code = opts.values.get("eval")
        if code is None:
            return Judgement(U, f"{prog} --eval with code produced by an expansion")
        return _mongo_judgement(prog, judge_mongo_js(code))
    if stdin.text is not None:
        return _mongo_judgement(prog, judge_mongo_js(stdin.text))
    if stdin.origin == "tty":
        return Judgement(U, f"{prog} opens an interactive session")
    return Judgement(U, f"{prog} runs code from {stdin.source or stdin.origin}")


def _mongo_judgement(prog: str, judgement: Judgement) -> Judgement:
    return Judgement(judgement.risk, f"{prog}: {judgement.reason}", judgement.tags)
