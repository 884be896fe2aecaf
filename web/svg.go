package web

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// svg writes one inline SVG chart for the reports page. Charts are drawn on the
// server from computed coordinates, so the page needs no script and no asset:
// every text is escaped here, which is why the result may be trusted as
// template.HTML. Each chart carries a <title> (its accessible name) and each
// bar a <title> of its own (its tooltip).
type svg struct {
	b strings.Builder
}

// Colours of the charts, matching layout.html's palette.
const (
	colInk    = "#1d2330"
	colMuted  = "#5f6b7a"
	colLine   = "#e2e6ec"
	colAccent = "#2856c7"
	colRef    = "#a9b4c4"
	colGood   = "#1f8a4c"
	colMid    = "#d9a21b"
	colBad    = "#c2412d"
)

// newSVG starts a chart of w×h user units; it scales down with the page.
func newSVG(w, h float64, title string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %s %s" width="%s" height="%s" role="img" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">`,
		num(w), num(h), num(w), num(h))
	fmt.Fprintf(&s.b, `<title>%s</title>`, html.EscapeString(title))
	return s
}

// rect draws a filled rectangle; a non-empty tip becomes its tooltip.
func (s *svg) rect(x, y, w, h float64, fill, tip string) {
	if w < 0 {
		w = 0
	}
	if h < 0 {
		h = 0
	}
	fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" rx="2">`, num(x), num(y), num(w), num(h), fill)
	if tip != "" {
		fmt.Fprintf(&s.b, `<title>%s</title>`, html.EscapeString(tip))
	}
	s.b.WriteString(`</rect>`)
}

// line draws a line; dashed lines are grid lines.
func (s *svg) line(x1, y1, x2, y2 float64, stroke string, dashed bool) {
	dash := ""
	if dashed {
		dash = ` stroke-dasharray="3 3"`
	}
	fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"%s/>`, num(x1), num(y1), num(x2), num(y2), stroke, dash)
}

// textStyle is how a text is drawn: anchor is start, middle or end.
type textStyle struct {
	anchor string
	size   float64
	fill   string
	bold   bool
}

func (s *svg) text(x, y float64, st textStyle, text string) {
	if st.anchor == "" {
		st.anchor = "start"
	}
	if st.size == 0 {
		st.size = 13
	}
	if st.fill == "" {
		st.fill = colInk
	}
	weight := ""
	if st.bold {
		weight = ` font-weight="600"`
	}
	fmt.Fprintf(&s.b, `<text x="%s" y="%s" text-anchor="%s" font-size="%s" fill="%s"%s>%s</text>`,
		num(x), num(y), st.anchor, num(st.size), st.fill, weight, html.EscapeString(text))
}

// html ends the chart.
func (s *svg) html() template.HTML {
	s.b.WriteString(`</svg>`)
	return template.HTML(s.b.String()) // every text in it went through html.EscapeString
}

// num writes a coordinate with at most one decimal.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
}

// hbar is one bar of a horizontal bar chart.
type hbar struct {
	Label string
	Value int
	// Note follows the value ("12% of enrolled"); optional.
	Note  string
	Color string
}

// hbarChart draws labelled horizontal bars scaled to the largest value, with
// the value (and note) after each bar. All zeros draw no bars, only the labels.
func hbarChart(title string, bars []hbar) template.HTML {
	const (
		width  = 720.0
		labelW = 150.0
		valueW = 190.0
		rowH   = 34.0
		barH   = 22.0
		pad    = 8.0
	)
	h := pad*2 + rowH*float64(len(bars))
	s := newSVG(width, h, title)
	maxV := 0
	for _, b := range bars {
		maxV = max(maxV, b.Value)
	}
	plotW := width - labelW - valueW
	s.line(labelW, pad, labelW, h-pad, colLine, false)
	for i, b := range bars {
		y := pad + rowH*float64(i) + (rowH-barH)/2
		w := 0.0
		if maxV > 0 {
			w = plotW * float64(b.Value) / float64(maxV)
		}
		color := b.Color
		if color == "" {
			color = colAccent
		}
		label := formatInt(b.Value)
		if b.Note != "" {
			label += " · " + b.Note
		}
		s.text(labelW-10, y+barH/2+4.5, textStyle{anchor: "end"}, b.Label)
		s.rect(labelW, y, w, barH, color, b.Label+": "+label)
		s.text(labelW+w+8, y+barH/2+4.5, textStyle{bold: true}, label)
	}
	return s.html()
}
