package main

import "strings"

// diffLine is one line of a line diff.
type diffLine struct {
	// Op is ' ' for a line in both texts, '-' for one only in the first and '+'
	// for one only in the second.
	Op   byte
	Text string
}

// maxDiffCells bounds the table of lineDiff (lines before × lines after, once
// the common beginning and end are set aside); beyond it the differing middle
// is shown as removed, then added.
const maxDiffCells = 4 << 20

// lineDiff returns b as a change of a, line by line: a longest common
// subsequence of lines is kept, the rest of a is removed and the rest of b
// added, removals first where both happen at one place.
func lineDiff(a, b string) []diffLine {
	as, bs := splitLines(a), splitLines(b)
	var out []diffLine
	pre := 0
	for pre < len(as) && pre < len(bs) && as[pre] == bs[pre] {
		out = append(out, diffLine{' ', as[pre]})
		pre++
	}
	suf := 0
	for suf < len(as)-pre && suf < len(bs)-pre && as[len(as)-1-suf] == bs[len(bs)-1-suf] {
		suf++
	}
	x, y := as[pre:len(as)-suf], bs[pre:len(bs)-suf]
	out = append(out, diffMiddle(x, y)...)
	for _, l := range as[len(as)-suf:] {
		out = append(out, diffLine{' ', l})
	}
	return out
}

// diffMiddle diffs x and y with an LCS table: lcs[i][j] is the length of the
// longest common subsequence of x[i:] and y[j:].
func diffMiddle(x, y []string) []diffLine {
	var out []diffLine
	if len(x)*len(y) > maxDiffCells || len(x) == 0 || len(y) == 0 {
		for _, l := range x {
			out = append(out, diffLine{'-', l})
		}
		for _, l := range y {
			out = append(out, diffLine{'+', l})
		}
		return out
	}
	w := len(y) + 1
	lcs := make([]int32, (len(x)+1)*w)
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			out = append(out, diffLine{' ', x[i]})
			i++
			j++
		case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
			out = append(out, diffLine{'-', x[i]})
			i++
		default:
			out = append(out, diffLine{'+', y[j]})
			j++
		}
	}
	for ; i < len(x); i++ {
		out = append(out, diffLine{'-', x[i]})
	}
	for ; j < len(y); j++ {
		out = append(out, diffLine{'+', y[j]})
	}
	return out
}

// splitLines splits s into lines without their line ends; a final line end
// does not start another line.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
