package campaign

import (
	"errors"
	"strings"
)

// errNoFrontMatter and errUnclosedFrontMatter are the two ways a file fails to have
// front matter at all.
var (
	errNoFrontMatter       = errors.New(`missing front matter: start the file with a line "---", the YAML keys, then "---"`)
	errUnclosedFrontMatter = errors.New(`front matter is never closed: end it with a line "---"`)
)

// splitFrontMatter splits src into its YAML front matter and Markdown body. The YAML
// starts on file line 2; body starts on file line bodyLine. Line endings are expected
// to be normalised to "\n" already.
func splitFrontMatter(src string) (yaml, body string, bodyLine int, err error) {
	src = strings.TrimPrefix(src, "\ufeff")
	first, rest, ok := strings.Cut(src, "\n")
	if strings.TrimRight(first, " \t") != "---" {
		return "", src, 1, errNoFrontMatter
	}
	if !ok {
		return "", "", 1, errUnclosedFrontMatter
	}
	line := 2
	for off := 0; off <= len(rest); {
		end := strings.IndexByte(rest[off:], '\n')
		var l string
		next := len(rest) + 1
		if end < 0 {
			l = rest[off:]
		} else {
			l = rest[off : off+end]
			next = off + end + 1
		}
		if strings.TrimRight(l, " \t") == "---" {
			if next > len(rest) {
				return rest[:off], "", line + 1, nil
			}
			return rest[:off], rest[next:], line + 1, nil
		}
		off = next
		line++
	}
	return "", "", 1, errUnclosedFrontMatter
}
