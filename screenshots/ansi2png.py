#!/usr/bin/env python3
"""Renders a terminal capture (tmux capture-pane -p -e -N) to a PNG image.

    ansi2png.py CAPTURE OUT.png [--cols N] [--rows N] [--font TTF] [--size PX]

The capture holds text and SGR escape sequences (bold, dim, reverse,
underline, the 8/16 colours, 256 colours, default colours).  Block elements
(U+2580-U+2588) are drawn as rectangles so that bars fill their cells;
everything else uses a monospace TrueType font (DejaVu Sans Mono by
default: Debian's fonts-dejavu-core).  Needs Pillow (python3-pil).
"""

import argparse
import re
import sys

from PIL import Image, ImageDraw, ImageFont

# A dark theme: the 16 ANSI colours.
PALETTE = [
    (0x1c, 0x1f, 0x24), (0xe0, 0x6c, 0x75), (0x98, 0xc3, 0x79), (0xe5, 0xc0, 0x7b),
    (0x61, 0xaf, 0xef), (0xc6, 0x78, 0xdd), (0x56, 0xb6, 0xc2), (0xc8, 0xcc, 0xd4),
    (0x5c, 0x63, 0x70), (0xff, 0x7b, 0x86), (0xb5, 0xe8, 0x90), (0xff, 0xd6, 0x8a),
    (0x82, 0xc4, 0xff), (0xde, 0x9c, 0xf0), (0x7f, 0xd8, 0xe2), (0xff, 0xff, 0xff),
]
DEFAULT_FG = (0xd7, 0xda, 0xe0)
DEFAULT_BG = (0x28, 0x2c, 0x34)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"

SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER_ESC = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Z0-9])")


def colour256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


class Attr:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None  # None: the default colour
        self.bg = None
        self.bold = self.dim = self.reverse = self.underline = False

    def copy(self):
        a = Attr()
        a.__dict__.update(self.__dict__)
        return a

    def apply(self, params):
        p = [int(x) if x else 0 for x in re.split("[;:]", params)] if params else [0]
        i = 0
        while i < len(p):
            v = p[i]
            if v == 0:
                self.reset()
            elif v == 1:
                self.bold = True
            elif v == 2:
                self.dim = True
            elif v == 4:
                self.underline = True
            elif v == 7:
                self.reverse = True
            elif v == 22:
                self.bold = self.dim = False
            elif v == 24:
                self.underline = False
            elif v == 27:
                self.reverse = False
            elif 30 <= v <= 37:
                self.fg = PALETTE[v - 30]
            elif 90 <= v <= 97:
                self.fg = PALETTE[v - 90 + 8]
            elif v == 39:
                self.fg = None
            elif 40 <= v <= 47:
                self.bg = PALETTE[v - 40]
            elif 100 <= v <= 107:
                self.bg = PALETTE[v - 100 + 8]
            elif v == 49:
                self.bg = None
            elif v in (38, 48) and i + 2 < len(p) and p[i + 1] == 5:
                c = colour256(p[i + 2])
                if v == 38:
                    self.fg = c
                else:
                    self.bg = c
                i += 2
            elif v in (38, 48) and i + 4 < len(p) and p[i + 1] == 2:
                c = tuple(p[i + 2:i + 5])
                if v == 38:
                    self.fg = c
                else:
                    self.bg = c
                i += 4
            i += 1

    def colours(self):
        fg = self.fg or DEFAULT_FG
        bg = self.bg or DEFAULT_BG
        if self.bold and self.fg in PALETTE[:8]:
            fg = PALETTE[PALETTE.index(self.fg) + 8]  # bold brightens, as terminals do
        if self.reverse:
            fg, bg = bg, fg
        if self.dim:
            fg = tuple((a + b) // 2 for a, b in zip(fg, bg))
        return fg, bg


def parse(text, cols, rows):
    """Grid of (char, Attr) cells."""
    grid = [[(" ", Attr())] * cols for _ in range(rows)]
    attr = Attr()  # tmux carries the attributes over from line to line
    for r, line in enumerate(text.split("\n")[:rows]):
        c = 0
        i = 0
        while i < len(line) and c < cols:
            if line[i] == "\x1b":
                m = SGR.match(line, i)
                if m:
                    attr.apply(m.group(1))
                    i = m.end()
                    continue
                m = OTHER_ESC.match(line, i)
                i = m.end() if m else i + 1
                continue
            grid[r][c] = (line[i], attr.copy())
            c += 1
            i += 1
        # tmux leaves out trailing blank cells of the default colours
        while c < cols:
            grid[r][c] = (" ", Attr())
            c += 1
    return grid


def render(grid, out, font_path, size):
    font = ImageFont.truetype(font_path, size)
    try:
        bold = ImageFont.truetype(FONT_BOLD if font_path == FONT else font_path, size)
    except OSError:
        bold = font
    left, top, right, bottom = font.getbbox("M")
    cw = font.getlength("M")
    ch = int(size * 1.3)
    rows, cols = len(grid), len(grid[0])
    pad = 12
    w, h = int(cw * cols) + 2 * pad, ch * rows + 2 * pad
    img = Image.new("RGB", (w, h), DEFAULT_BG)
    d = ImageDraw.Draw(img)
    ascent = font.getmetrics()[0]
    baseline_off = (ch - size) // 2
    for r, row in enumerate(grid):
        y = pad + r * ch
        for c, (char, attr) in enumerate(row):
            x = pad + int(round(c * cw))
            x2 = pad + int(round((c + 1) * cw))
            fg, bg = attr.colours()
            if bg != DEFAULT_BG:
                d.rectangle([x, y, x2 - 1, y + ch - 1], fill=bg)
            o = ord(char)
            if 0x2581 <= o <= 0x2588:  # lower blocks: exact rectangles
                frac = (o - 0x2580) / 8
                d.rectangle([x, y + ch - int(ch * frac), x2 - 1, y + ch - 1], fill=fg)
            elif o == 0x2580:
                d.rectangle([x, y, x2 - 1, y + ch // 2 - 1], fill=fg)
            elif char != " ":
                d.text((x, y + baseline_off + size - ascent), char, font=bold if attr.bold else font,
                       fill=fg)
            if attr.underline:
                d.line([x, y + ch - 2, x2 - 1, y + ch - 2], fill=fg)
    img.save(out, optimize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--font", default=FONT)
    ap.add_argument("--size", type=int, default=15)
    o = ap.parse_args()
    with open(o.capture, encoding="utf-8", errors="replace") as f:
        text = f.read()
    render(parse(text, o.cols, o.rows), o.out, o.font, o.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
