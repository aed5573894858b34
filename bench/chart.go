package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart draws the rows that have a ratio as horizontal bars on a log scale from 0.01x to 1000x, with the 1.0
// line (as good as the baseline) marked; green bars are below 1 (less time or memory), except requests/s, where
// above 1 is better.
func (rep *Report) Chart(w io.Writer) error {
	var rows []Row
	for _, row := range rep.Rows {
		if row.Ratio > 0 {
			rows = append(rows, row)
		}
	}
	const (
		labelW = 560
		barW   = 420
		rowH   = 18
		top    = 40
		pad    = 10
	)
	width := labelW + barW + 90
	height := top + rowH*len(rows) + 40
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text := func(x, y int, s string, c color.Color) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(ascii.Replace(s))
	}
	lo, hi := math.Log10(0.01), math.Log10(1000)
	xOf := func(v float64) int {
		l := math.Max(lo, math.Min(hi, math.Log10(v)))
		return labelW + int((l-lo)/(hi-lo)*barW)
	}
	text(pad, 18, "Kouple / baseline (log scale; 1.0 = same as the baseline)", color.Black)
	grey := color.RGBA{200, 200, 200, 255}
	for _, t := range []float64{0.01, 0.1, 1, 10, 100, 1000} {
		x := xOf(t)
		c := grey
		if t == 1 {
			c = color.RGBA{0, 0, 0, 255}
		}
		fill(img, x, top-6, x+1, top+rowH*len(rows), c)
		text(x-10, top+rowH*len(rows)+16, fmt.Sprintf("%gx", t), color.Black)
	}
	one := xOf(1)
	for i, row := range rows {
		y := top + i*rowH
		label := row.Comparison + ": " + row.Metric
		if len(label) > labelW/7-1 {
			label = label[:labelW/7-2] + "…"
		}
		text(pad, y+13, label, color.Black)
		x := xOf(row.Ratio)
		better := row.Ratio < 1
		if isRate(row) {
			better = row.Ratio > 1
		}
		c := color.RGBA{200, 60, 60, 255}
		if better {
			c = color.RGBA{60, 160, 80, 255}
		}
		x0, x1 := min(one, x), max(one, x)
		fill(img, x0, y+3, max(x1, x0+1), y+rowH-3, c)
		text(labelW+barW+8, y+13, fmt.Sprintf("%.2fx", row.Ratio), color.Black)
	}
	return png.Encode(w, img)
}

func isRate(row Row) bool { return len(row.Metric) >= 10 && row.Metric[:10] == "requests/s" }

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(c), image.Point{}, draw.Src)
}

// ascii replaces what the 7x13 bitmap font cannot draw.
var ascii = strings.NewReplacer("→", "->", "÷", "/", "µ", "u", "≥", ">=", "≤", "<=", "×", "x", "–", "-", "…", "...")
