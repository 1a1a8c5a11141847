"""A small report document (headings, paragraphs, tables, images) rendered to markdown and to HTML,
so the two files always say the same thing."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # rendered without its index


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report file
    alt: str


Block = Heading | Paragraph | Table | Image


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(block.frame.to_markdown(index=False, disable_numparse=True))  # keep "0.930" as written
        else:
            parts.append(f"![{block.alt}]({block.path})")
    return "\n\n".join(parts) + "\n"


def to_html(blocks: list[Block], title: str) -> str:
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(block.frame.to_html(index=False, border=0, classes="metrics", na_rep="n/a"))
        else:
            body.append(f'<p><img src="{html.escape(block.path)}" alt="{html.escape(block.alt)}"></p>')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
             "table.metrics{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "table.metrics td,table.metrics th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
