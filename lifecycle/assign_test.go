package lifecycle

import (
	"fmt"
	"testing"

	"github.com/retainmail/retain/campaign"
)

// The assignment tests count over n customer IDs; a share p of them lands
// within 3 standard deviations, 3·sqrt(n·p·(1−p)), of n·p, which a fair hash
// misses about once in 370 runs of one count — and never here, since the IDs
// and so the counts are fixed.
const assignN = 10_000

func ids() []string {
	out := make([]string, assignN)
	for i := range out {
		out[i] = fmt.Sprintf("cust_%05d", i)
	}
	return out
}

func abStep(splits ...int) *campaign.Step {
	st := &campaign.Step{ID: "onboarding/first-project", Slug: "first-project"}
	for i, s := range splits {
		st.AB = append(st.AB, &campaign.ABVariant{Name: string(rune('b' + i)), Split: s})
	}
	return st
}

// within reports whether got is within tol of want, failing t if not.
func within(t *testing.T, what string, got, want, tol int) {
	t.Helper()
	t.Logf("%s: %d of %d (want %d ± %d, 3 standard deviations)", what, got, assignN, want, tol)
	if got < want-tol || got > want+tol {
		t.Errorf("%s: %d of %d, want %d ± %d", what, got, assignN, want, tol)
	}
}

func TestAssignVariantIsStable(t *testing.T) {
	st := abStep(50)
	for _, id := range ids()[:100] {
		v := AssignVariant(id, st)
		if v != "a" && v != "b" {
			t.Fatalf("%s: variant %q", id, v)
		}
		for range 3 {
			if again := AssignVariant(id, st); again != v {
				t.Fatalf("%s: %s, then %s", id, v, again)
			}
		}
	}
	if v := AssignVariant("c1", &campaign.Step{ID: "onboarding/welcome"}); v != "" {
		t.Errorf("a step without variants gives %q, want \"\"", v)
	}
	// Another step splits the same customers differently.
	other := abStep(50)
	other.ID = "onboarding/check-in"
	same := 0
	for _, id := range ids() {
		if AssignVariant(id, st) == AssignVariant(id, other) {
			same++
		}
	}
	within(t, "same variant in two steps", same, assignN/2, 150)
}

func TestAssignVariantSplitsEvenly(t *testing.T) {
	count := map[string]int{}
	st := abStep(50)
	for _, id := range ids() {
		count[AssignVariant(id, st)]++
	}
	within(t, "split 50: variant b", count["b"], 5000, 150) // sd 50
	within(t, "split 50: variant a", count["a"], 5000, 150)

	count = map[string]int{}
	st = abStep(20, 30)
	for _, id := range ids() {
		count[AssignVariant(id, st)]++
	}
	within(t, "split 20/30: variant b", count["b"], 2000, 120) // sd 40
	within(t, "split 20/30: variant c", count["c"], 3000, 138) // sd 45.8
	within(t, "split 20/30: variant a", count["a"], 5000, 150) // sd 50
}

func TestHoldoutIsTenPercentAndIndependentOfVariants(t *testing.T) {
	camp := &campaign.Campaign{ID: "onboarding", Holdout: 1000}
	st := abStep(50)
	held, inB, heldInB := 0, 0, 0
	for _, id := range ids() {
		h := InHoldout(id, camp)
		b := AssignVariant(id, st) == "b"
		if h {
			held++
		}
		if b {
			inB++
			if h {
				heldInB++
			}
		}
	}
	within(t, "holdout 10%", held, 1000, 90) // sd 30
	// Among the ~5,000 customers of variant b, 10% are in the holdout: sd
	// sqrt(5000·.1·.9) ≈ 21, so ±64 around 10% of b's count.
	t.Logf("holdout among variant b: %d of %d", heldInB, inB)
	if want := inB / 10; heldInB < want-64 || heldInB > want+64 {
		t.Errorf("holdout among variant b: %d of %d, want %d ± 64", heldInB, inB, want)
	}
	if InHoldout("c1", &campaign.Campaign{ID: "onboarding"}) {
		t.Error("a campaign without holdout holds customers out")
	}
}
