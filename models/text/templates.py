"""Online log-template mining: the Drain algorithm, with stable template ids.

Drain (He, Zhu, Zheng and Lyu, "Drain: An Online Log Parsing Approach with Fixed Depth Tree",
ICWS 2017) groups log messages by the template that printed them. A message is masked
(numbers and hex ids become ``<NUM>`` and ``<HEX>``), split on white space, and routed down a
tree of fixed depth: first by its token count, then by its first ``depth - 2`` tokens (a token
with a digit or a placeholder is routed as ``<*>``). The leaf holds a few templates; the most
similar one, by the share of positions holding the same token, takes the message if the share
reaches ``similarity``, and every position where they differ becomes the wildcard ``<*>``.
Otherwise the message starts a new template.

Two additions to Drain, both about ``key=value`` fields, and neither tuned per log:

* a field is compared by its name and the kind of its value (empty, one plain word, or
  anything else): ``tty=:0`` and ``tty=NODEVssh``, ``rhost=`` and ``rhost=<IP>``, or
  ``(uid=0)`` and ``LOGIN(uid=0)`` never share a template, however similar the rest;
* a field holding plain words is an enumeration (``user=root`` and ``user=guest`` are two
  events) until it has shown ``enum_values`` different words in otherwise matching
  templates; those templates are then merged into one with ``<*>`` there, which keeps the
  id of the busiest member, and the other ids become aliases of it (:meth:`TemplateMiner.resolve`).

This is our own implementation rather than the ``drain3`` package, which has had no release
since 2022, numbers its clusters in creation order (so an id depends on the whole history
and a re-mined stream gets other ids) and saves its state with ``jsonpickle``. Here:

* a template's id is a hash of the token sequence it was created from, kept when the
  template generalises, so the same first message gets the same id in every run, and
  :meth:`TemplateMiner.to_state` / :meth:`TemplateMiner.from_state` carry the ids (and all
  the rest) across restarts as plain JSON-ready data;
* memory is bounded: at most ``max_templates`` templates (the least recently matched one is
  evicted), ``max_tokens`` tokens per message, ``max_children`` children per tree node,
  a memo of recently seen masked messages of at most ``memo_size`` entries, and at most
  ``max_templates`` aliases of merged templates (the oldest merge is forgotten first);
* a message whose masked form was seen recently is matched by a dictionary look-up, which
  is the common case for error streams and makes mining cost little more than masking.

Messages are expected to be redacted already (:class:`models.text.redact.Redactor`); its
placeholders (``<IP>``, ``<EMAIL>``, ...) are ordinary constant tokens here.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["WILDCARD", "TemplateMatch", "TemplateMiner", "mask", "template_id_for"]

WILDCARD = "<*>"
"""The token standing for a variable part of a template."""

_STATE_VERSION = 1

# Numbers and hex ids standing alone (not inside a word such as ``ssh2`` or ``utf8``);
# ``blk_-123`` and ``uid=0`` are masked since ``_``, ``-`` and ``=`` are separators here.
_MASKS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?P<num>[-+]?\d+(?:\.\d+)*)"
    r"|(?P<hex>0[xX][0-9a-fA-F]+|(?=[a-f]*\d)[0-9a-f]{8,}|(?=[A-F]*\d)[0-9A-F]{8,})"
    r")(?![A-Za-z0-9]|\.[A-Za-z0-9])"
)
# Tokens routed as ``<*>``: those with a digit or a placeholder (``<NUM>``, ``<IP>``, ...),
# which are likely to vary between messages of one template.
_VARIABLE = re.compile(r"\d|<[A-Z*]+>")


# ``key=value`` tokens: a field name (letters, digits, ``_.()-``, at least one letter) and
# its value. Such a field is compared by its name and the kind of its value.
_FIELD = re.compile(r"([\w.()-]*[A-Za-z][\w.()-]*)=(.*)", re.DOTALL)
# A value that is one plain word (``user=root``, ``tty=NODEVssh``): an enumeration member
# until the field has shown ``enum_values`` different words.
_WORD = re.compile(r"[A-Za-z_]+")


def _field(token: str) -> tuple[str, str] | None:
    match = _FIELD.fullmatch(token) if "=" in token else None
    return None if match is None else (match[1], match[2])


def _value_kind(value: str) -> str:
    if not value:
        return "empty"
    return "word" if _WORD.fullmatch(value) else "variable"


def _field_clash(a: str, b: str) -> str | None:
    """How two different tokens of one position clash as fields, if they are fields.

    ``"field"``: different field names, or values of different kinds (``tty=:<NUM>`` and
    ``tty=NODEVssh``, ``rhost=`` and ``rhost=<IP>``): never one template. ``"word"``: one
    field holding two plain words (``user=root``, ``user=guest``): two templates while the
    field looks like an enumeration. ``None``: no clash (not both fields, or variable values).

    >>> _field_clash("user=root", "user=guest"), _field_clash("tty=:<NUM>", "tty=NODEVssh")
    ('word', 'field')
    >>> _field_clash("rhost=<IP>", "rhost=host-7.example.net") is None
    True
    """
    fa, fb = _field(a), _field(b)
    if fa is None or fb is None:
        return None
    if fa[0] != fb[0]:
        return "field"
    ka, kb = _value_kind(fa[1]), _value_kind(fb[1])
    if ka != kb:
        return "field"
    return "word" if ka == "word" else None


def _mask_repl(match: re.Match[str]) -> str:
    return "<HEX>" if match.lastgroup == "hex" else "<NUM>"


def mask(message: str) -> str:
    """Replace numbers and hex ids standing alone by ``<NUM>`` and ``<HEX>``.

    Examples
    --------
    >>> mask("worker pid 4242 killed after 1.5 s, request 9f3a0c2b11d4e5f6, ssh2 blk_-17")
    'worker pid <NUM> killed after <NUM> s, request <HEX>, ssh2 blk_<NUM>'
    """
    return _MASKS.sub(_mask_repl, message)


def template_id_for(tokens: list[str] | tuple[str, ...], salt: int = 0) -> str:
    """The stable id of a template created from ``tokens``: 12 hex digits of BLAKE2b.

    ``salt`` tells apart the rare templates whose first token sequences collide.

    Examples
    --------
    >>> template_id_for(["connection", "to", "<IP>", "refused"])
    'd8cf65530d11'
    """
    text = " ".join(tokens) if not salt else " ".join(tokens) + f"\x00{salt}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """The template a message belongs to, as :meth:`TemplateMiner.learn_one` found it.

    Attributes
    ----------
    template_id
        Stable id of the template.
    template
        The template's tokens joined by spaces, with ``<*>`` for variable parts.
    count
        Messages the template has taken, this one included.
    change
        ``"new"`` (this message created it), ``"generalised"`` (this message turned some
        of its tokens into ``<*>``) or ``"none"``.
    """

    template_id: str
    template: str
    count: int
    change: str


class _Cluster:
    """One template: its tokens, its count and where it sits in the tree."""

    __slots__ = ("count", "path", "template_id", "tokens")

    def __init__(self, template_id: str, tokens: list[str], path: tuple[Any, ...], count: int):
        self.template_id = template_id
        self.tokens = tokens
        self.path = path
        self.count = count

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


class TemplateMiner:
    """Mine log templates online with Drain; ids are stable across runs and restarts.

    Parameters
    ----------
    similarity
        Least share of positions a message must have in common with a template to join it.
        The default is the middle of the range (0.63 to 0.71) where grouping accuracy on
        the Loghub samples of HDFS, Linux, OpenSSH and Zookeeper is best (0.92 on average
        before fields were compared by kind, against 0.86 for Drain as published).
    depth
        Depth of the routing tree: the first ``depth - 2`` tokens route a message.
    max_children
        Most children of a tree node; tokens beyond it are routed as ``<*>``.
    max_templates
        Most templates kept; the least recently matched one is evicted beyond it.
    max_tokens
        Tokens of a message beyond this many are dropped and stand as one final ``<*>``.
    memo_size
        Most masked messages remembered for the fast exact-match path.
    enum_values
        Different words a ``key=value`` field must show before its templates are merged
        into one with the field variable. Fields in the routing prefix (the first
        ``depth - 2`` tokens) route their messages apart and are never merged.

    Notes
    -----
    The memo answers a repeated masked message with the template it joined before, even if
    a more similar template has appeared since: a message never changes template.

    Memory is bounded by ``max_templates`` templates of at most ``max_tokens`` tokens, a tree
    with at most one node per template per level, ``memo_size`` memo entries and
    ``max_templates`` aliases: about 1.5 KiB per template (its tree nodes included),
    200 bytes per memo entry for typical messages and 150 bytes per alias.

    Examples
    --------
    >>> miner = TemplateMiner()
    >>> a = miner.learn_one("connection to <IP> refused after 30 ms")
    >>> b = miner.learn_one("connection to <IP> refused after 2500 ms")
    >>> c = miner.learn_one("connection to <IP> closed by peer after 12 ms")
    >>> a.template_id == b.template_id, b.template, b.count
    (True, 'connection to <IP> refused after <NUM> ms', 2)
    >>> d = miner.learn_one("connection to <IP> reset after 40 ms")
    >>> d.template_id == a.template_id, d.template, d.change
    (True, 'connection to <IP> <*> after <NUM> ms', 'generalised')
    >>> restored = TemplateMiner.from_state(miner.to_state())
    >>> restored.predict_one("connection to <IP> refused after 7 ms").template_id == a.template_id
    True
    """

    def __init__(
        self,
        *,
        similarity: float = 0.67,
        depth: int = 4,
        max_children: int = 100,
        max_templates: int = 10_000,
        max_tokens: int = 64,
        memo_size: int = 50_000,
        enum_values: int = 4,
    ) -> None:
        if not 0.0 < similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], got {similarity}")
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        # A node keeps a slot for its wildcard child; a cut message keeps a token and a <*>.
        for name, value in (("max_children", max_children), ("max_tokens", max_tokens)):
            if value < 2:
                raise ValueError(f"{name} must be >= 2, got {value}")
        if max_templates < 1:
            raise ValueError(f"max_templates must be >= 1, got {max_templates}")
        if memo_size < 0:
            raise ValueError(f"memo_size must be >= 0, got {memo_size}")
        if enum_values < 2:
            raise ValueError(f"enum_values must be >= 2, got {enum_values}")
        self.similarity = similarity
        self.depth = depth
        self.max_children = max_children
        self.max_templates = max_templates
        self.max_tokens = max_tokens
        self.memo_size = memo_size
        self.enum_values = enum_values
        # Tree: nested dicts keyed by token count, then by routing tokens; leaves are lists.
        self._root: dict[Any, Any] = {}
        # Templates by id, least recently matched first.
        self._clusters: OrderedDict[str, _Cluster] = OrderedDict()
        self._memo: dict[str, _Cluster] = {}
        # Ids of merged templates -> the template they were merged into, oldest merge first.
        self._aliases: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clusters)

    # ------------------------------------------------------------------ matching
    def _tokens(self, masked: str) -> list[str]:
        tokens = masked.split()
        if len(tokens) > self.max_tokens:
            tokens = [*tokens[: self.max_tokens - 1], WILDCARD]
        return tokens

    def _route(self, tokens: list[str]) -> list[Any]:
        """The routing keys of ``tokens``: their count, then up to ``depth - 2`` tokens."""
        keys: list[Any] = [len(tokens)]
        for token in tokens[: self.depth - 2]:
            keys.append(WILDCARD if _VARIABLE.search(token) else token)
        return keys

    def _walk(self, keys: list[Any], create: bool) -> tuple[list[_Cluster] | None, list[Any]]:
        """The leaf for routing ``keys`` and the keys actually followed to it.

        A full node sends tokens it has no child for to its wildcard child; the first
        level, token counts, is not limited (it has at most ``max_tokens`` children).
        """
        node: Any = self._root
        path: list[Any] = []
        last = len(keys) - 1
        for i, key in enumerate(keys):
            child = node.get(key)
            if child is None and i > 0 and key != WILDCARD and len(node) >= self.max_children - 1:
                key = WILDCARD
                child = node.get(key)
            if child is None:
                if not create:
                    return None, path
                child = node[key] = [] if i == last else {}
            path.append(key)
            node = child
        return node, path

    def _place(self, path: list[Any]) -> list[_Cluster]:
        """The leaf at an effective path, created as needed, with no redirection."""
        node: Any = self._root
        last = len(path) - 1
        for i, key in enumerate(path):
            child = node.get(key)
            if child is None:
                child = node[key] = [] if i == last else {}
            node = child
        return node

    def _best(self, leaf: list[_Cluster], tokens: list[str]) -> _Cluster | None:
        best: _Cluster | None = None
        best_score = (-1.0, -1)
        n = len(tokens)
        for cluster in leaf:
            same = 0
            params = 0
            for t, m in zip(cluster.tokens, tokens, strict=True):
                if t == m:
                    same += 1
                elif t == WILDCARD:
                    params += 1
                elif "=" in t and _field_clash(t, m) is not None:
                    break
            else:
                # Drain's tie-break: among equally similar templates, the more general one.
                score = (same / n if n else 1.0, params)
                if score > best_score:
                    best, best_score = cluster, score
        if best is None or best_score[0] < self.similarity:
            return None
        return best

    def _find(self, masked: str) -> tuple[list[str], list[Any], _Cluster | None]:
        tokens = self._tokens(masked)
        keys = self._route(tokens)
        leaf, _ = self._walk(keys, create=False)
        return tokens, keys, None if leaf is None else self._best(leaf, tokens)

    def _remembered(self, masked: str) -> _Cluster | None:
        cluster = self._memo.get(masked)
        # Entries of evicted templates are skipped here and age out of the memo (an evicted
        # template may have come back as a new object with the same id).
        if cluster is not None and self._clusters.get(cluster.template_id) is cluster:
            return cluster
        return None

    def learn_one(self, message: str) -> TemplateMatch:
        """Assign ``message`` to a template, creating or generalising one as needed."""
        masked = mask(message)
        cluster = self._remembered(masked)
        if cluster is not None:
            # A masked message seen before matched its template then, and templates only
            # generalise, so it still matches: nothing to update but the count.
            cluster.count += 1
            self._clusters.move_to_end(cluster.template_id)
            return TemplateMatch(cluster.template_id, cluster.text, cluster.count, "none")
        tokens, keys, cluster = self._find(masked)
        if cluster is None:
            cluster = self._create(tokens, keys)
            change = "new"
            merged = self._merge_enumeration(cluster)
            if merged is not cluster:
                cluster, change = merged, "generalised"
        else:
            change = "none"
            template = cluster.tokens
            for i, (t, m) in enumerate(zip(template, tokens, strict=True)):
                if t != m and t != WILDCARD:
                    template[i] = WILDCARD
                    change = "generalised"
            cluster.count += 1
            self._clusters.move_to_end(cluster.template_id)
        if self.memo_size:
            if len(self._memo) >= self.memo_size:
                # Forget the oldest entry (dicts keep insertion order).
                del self._memo[next(iter(self._memo))]
            self._memo[masked] = cluster
        return TemplateMatch(cluster.template_id, cluster.text, cluster.count, change)

    def predict_one(self, message: str) -> TemplateMatch | None:
        """The template ``message`` would join, without learning; ``None`` if it would start one."""
        masked = mask(message)
        cluster = self._remembered(masked) or self._find(masked)[2]
        if cluster is None:
            return None
        return TemplateMatch(cluster.template_id, cluster.text, cluster.count, "none")

    def _create(self, tokens: list[str], keys: list[Any]) -> _Cluster:
        salt = 0
        template_id = template_id_for(tokens)
        while template_id in self._clusters:
            salt += 1
            template_id = template_id_for(tokens, salt)
        leaf, path = self._walk(keys, create=True)
        assert leaf is not None
        cluster = _Cluster(template_id, list(tokens), tuple(path), 1)
        leaf.append(cluster)
        self._clusters[template_id] = cluster
        if len(self._clusters) > self.max_templates:
            self._evict(next(iter(self._clusters.values())))
        return cluster

    def _enumeration_position(self, a: list[str], b: list[str]) -> int | None:
        """The one position where ``a`` and ``b`` hold two words of one field, if that is
        all that keeps them apart (the rest is as similar as one template needs)."""
        position = None
        same = 0
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x == y:
                same += 1
                continue
            clash = _field_clash(x, y) if "=" in x else None
            if clash == "field" or (clash == "word" and position is not None):
                return None
            if clash == "word":
                position = i
                same += 1
        if position is None or same < self.similarity * len(a):
            return None
        return position

    def _merge_enumeration(self, new: _Cluster) -> _Cluster:
        """Merge ``new`` with the templates that differ from it only by the word of one
        field, once that field has shown ``enum_values`` different words: it is then a
        variable (``user=<*>``), not an enumeration of events (``user=root``, ``user=guest``).

        The merged template keeps the id of the member with the most messages (ties: the
        smallest id); the other ids become aliases of it (:meth:`resolve`).
        """
        leaf = self._place(list(new.path))
        position = None
        group = [new]
        for cluster in leaf:
            if cluster is new:
                continue
            p = self._enumeration_position(cluster.tokens, new.tokens)
            if p is not None and (position is None or p == position):
                position = p
                group.append(cluster)
        if position is None or len({c.tokens[position] for c in group}) < self.enum_values:
            return new
        survivor = min(group, key=lambda c: (-c.count, c.template_id))
        template = survivor.tokens
        for cluster in group:
            if cluster is survivor:
                continue
            for i, (t, m) in enumerate(zip(template, cluster.tokens, strict=True)):
                if t != m:
                    template[i] = WILDCARD
            survivor.count += cluster.count
            leaf.remove(cluster)
            del self._clusters[cluster.template_id]
            self._alias(cluster.template_id, survivor.template_id)
        self._clusters.move_to_end(survivor.template_id)
        return survivor

    def _alias(self, old: str, new: str) -> None:
        self._aliases.pop(old, None)
        self._aliases[old] = new
        if len(self._aliases) > self.max_templates:
            del self._aliases[next(iter(self._aliases))]

    def resolve(self, template_id: str) -> str:
        """The id a template id stands for now: itself, or the template it was merged into.

        Ids of templates merged long ago (more than ``max_templates`` merges back) resolve
        to themselves.
        """
        for _ in range(len(self._aliases) + 1):
            merged_into = self._aliases.get(template_id)
            if merged_into is None:
                break
            template_id = merged_into
        return template_id

    def _evict(self, cluster: _Cluster) -> None:
        del self._clusters[cluster.template_id]
        nodes: list[Any] = [self._root]
        for key in cluster.path:
            nodes.append(nodes[-1][key])
        nodes[-1].remove(cluster)
        # Prune the branch up to the first node still in use, so the tree stays bounded.
        for parent, key, child in zip(
            reversed(nodes[:-1]), reversed(cluster.path), reversed(nodes[1:]), strict=True
        ):
            if child:
                break
            del parent[key]

    # ------------------------------------------------------------------ inspection
    def templates(self) -> list[TemplateMatch]:
        """Every template, most messages first."""
        return [
            TemplateMatch(c.template_id, c.text, c.count, "none")
            for c in sorted(self._clusters.values(), key=lambda c: (-c.count, c.template_id))
        ]

    def get(self, template_id: str) -> TemplateMatch | None:
        """The template with this id, if it is kept."""
        c = self._clusters.get(template_id)
        return None if c is None else TemplateMatch(c.template_id, c.text, c.count, "none")

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data (the memo is rebuilt on the way)."""
        return {
            "version": _STATE_VERSION,
            "params": {
                "similarity": self.similarity,
                "depth": self.depth,
                "max_children": self.max_children,
                "max_templates": self.max_templates,
                "max_tokens": self.max_tokens,
                "memo_size": self.memo_size,
                "enum_values": self.enum_values,
            },
            # Least recently matched first, so that eviction order survives too.
            "templates": [
                [c.template_id, c.tokens, list(c.path), c.count] for c in self._clusters.values()
            ],
            "aliases": list(self._aliases.items()),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TemplateMiner:
        """A miner resumed from :meth:`to_state`'s output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported template miner state version {state.get('version')!r}")
        miner = cls(**state["params"])
        for template_id, tokens, path, count in state["templates"]:
            cluster = _Cluster(str(template_id), [str(t) for t in tokens], tuple(path), int(count))
            miner._place(list(path)).append(cluster)
            miner._clusters[cluster.template_id] = cluster
        # States written before merges existed have no aliases.
        for old, new in state.get("aliases", ()):
            miner._aliases[str(old)] = str(new)
        return miner
