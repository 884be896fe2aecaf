package campaign

import (
	"fmt"
	"strings"
)

// DidYouMean returns ` (did you mean "x"?)` for the known word closest to word, or ""
// when none is close enough to be a likely typo. A word that is a misspelt start of a
// known word counts too: "Frist" suggests "FirstName".
func DidYouMean(word string, known []string) string {
	w := strings.ToLower(word)
	best, bestDist, bestPrefix := "", -1, false
	for _, k := range known {
		kl := strings.ToLower(k)
		d, prefix := editDistance(w, kl), false
		if len(w) >= 4 && len(kl) > len(w) {
			if pd := editDistance(w, kl[:len(w)]); pd < d {
				d, prefix = pd, true
			}
		}
		// Whole-word matches win ties over prefix matches.
		if bestDist < 0 || d < bestDist || d == bestDist && bestPrefix && !prefix {
			best, bestDist, bestPrefix = k, d, prefix
		}
	}
	limit := max(1, min(len(word), len(best))/3)
	if bestDist < 0 || bestDist > limit || bestDist == 0 && word == best {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Damerau–Levenshtein distance (with adjacent transpositions)
// between a and b, counted in bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
