"""Show numpyvae's plain-text docstrings faithfully in the API reference.

numpyvae's docstrings follow numpydoc's sections but are written for a
terminal: equations in plain text such as ``|a|``, ``x_`` or
``sum_j (mu_j^2 + ...)``, continuation lines indented for alignment.
reStructuredText reads some of that as markup (``|a|`` is a
substitution, ``n_features_in_`` a link target, an indented line a block
quote). This extension runs before numpydoc and makes the text literal
where it has to be, without changing what it says:

* the Notes section (the forward equation and its derivative) becomes a
  literal block, shown in a fixed-width font exactly as ``help()`` shows
  it;
* a parameter or return description, or a paragraph, that continues on
  more deeply indented lines becomes a literal block;
* elsewhere the characters that would start markup (``|``, ``*`` inside
  a line, ``_`` ending a word) are escaped outside ``code`` spans.

Examples sections are left alone: their doctests are already literal.
"""

from __future__ import annotations

import re

LITERAL_SECTIONS = {"Notes"}
ITEM_SECTIONS = {"Parameters", "Other Parameters", "Returns", "Yields", "Receives",
                 "Raises", "Warns", "Warnings", "Attributes", "Methods"}
VERBATIM_SECTIONS = {"Examples", "See Also"}

CODE_SPAN = re.compile(r"(``.+?``|`[^`]+`)")
MARKUP = re.compile(r"(\|)|(?<=\S)(\*)|(?<=\w)(_)(?=\W|$)")


def escape(line: str) -> str:
    """Escape inline-markup characters outside code spans."""
    parts = CODE_SPAN.split(line)
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = MARKUP.sub(lambda m: "\\" + m.group(0), parts[i])
    return "".join(parts)


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def literal(lines: list[str], pad: str) -> list[str]:
    """`lines` as a literal block whose marker line is indented by `pad`."""
    base = min(indent(line) for line in lines if line.strip())
    return [pad + ".. code-block:: text", ""] + [pad + "    " + line[base:] if line.strip() else ""
                               for line in lines]


def prose(lines: list[str]) -> list[str]:
    """Paragraphs: escaped, or literal where a paragraph's lines indent."""
    out: list[str] = []
    paragraph: list[str] = []

    def flush():
        if not paragraph:
            return
        first = indent(paragraph[0])
        bullets = re.match(r"\s*[*-] ", paragraph[0])
        if not bullets and any(indent(line) > first for line in paragraph[1:]):
            out.extend(literal(paragraph, " " * first))
        else:
            out.extend(escape(line) for line in paragraph)
        paragraph.clear()

    for line in lines:
        if line.strip():
            paragraph.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return out


def items(lines: list[str]) -> list[str]:
    """A Parameters-like section: item lines kept, descriptions as prose."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() and indent(line) == 0:
            out.append(escape(line) if " : " not in line else line)
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or indent(lines[j]) > 0):
                j += 1
            body = lines[i + 1:j]
            while body and not body[-1].strip():
                body.pop()
            nonblank = [b for b in body if b.strip()]
            if nonblank and any(indent(b) > indent(nonblank[0]) for b in nonblank):
                out.extend(literal(body, " " * indent(nonblank[0])))
            else:
                out.extend(escape(b) for b in body)
            out.extend([""] * (j - i - 1 - len(body)))
            i = j
        else:
            out.append(escape(line))
            i += 1
    return out


def sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Split docstring lines at numpydoc section headers ('Name', '----')."""
    found: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if (line.strip() and re.fullmatch(r"-{3,}", underline.strip())
                and len(underline.strip()) == len(line.strip())):
            found.append((line.strip(), []))
            i += 2
            continue
        found[-1][1].append(line)
        i += 1
    return found


def rewrite(lines: list[str]) -> list[str]:
    out: list[str] = []
    for name, body in sections(lines):
        if name:
            out += [name, "-" * len(name)]
        if name in LITERAL_SECTIONS and any(b.strip() for b in body):
            start = next(k for k, b in enumerate(body) if b.strip())
            end = max(k for k, b in enumerate(body) if b.strip()) + 1
            out += body[:start] + literal(body[start:end], "") + body[end:]
        elif name in VERBATIM_SECTIONS:
            out += body
        elif name in ITEM_SECTIONS:
            out += items(body)
        else:
            out += prose(body)
    return out


def plain_docstrings(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = rewrite(lines)


def setup(app):
    # numpydoc's handler has the default priority 500: run before it.
    app.connect("autodoc-process-docstring", plain_docstrings, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
