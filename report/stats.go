package report

import "math"

// The statistics of the experiment reports: a campaign's holdout (treatment
// against control) and a step's A/B variants (each against variant a). Both
// compare two goal conversion rates, x₁ of n₁ and x₂ of n₂.
//
// The interval is Newcombe's hybrid score interval for a difference of
// independent proportions (R. G. Newcombe, "Interval estimation for the
// difference between independent proportions: comparison of eleven methods",
// Statistics in Medicine 17, 1998, method 10): the Wilson score interval
// [l, u] of each rate, combined as
//
//	d = p₁ − p₂
//	lower = d − √((p₁ − l₁)² + (u₂ − p₂)²)
//	upper = d + √((u₁ − p₁)² + (p₂ − l₂)²)
//
// It keeps its coverage for small counts and rates near 0 or 1, where the
// textbook p ± 1.96·SE (Wald) interval is too narrow or leaves [−1, 1]. The
// p-value is the two-sided pooled two-proportion z-test:
//
//	p = (x₁ + x₂) / (n₁ + n₂)
//	z = (p₁ − p₂) / √(p(1 − p)(1/n₁ + 1/n₂))
//	P = 2(1 − Φ(|z|)) = erfc(|z| / √2)
//
// Near the 5% boundary the two can disagree; the verdict follows the interval.

// Method names the statistics of a Comparison, as the output says them.
const Method = "95% interval, Newcombe hybrid score; p: two-sided pooled two-proportion z-test"

// The "not enough data yet" rule: a comparison is shown only when each group
// has at least MinCustomers customers, and at least MinOutcomes of them
// reached the goal and MinOutcomes did not. Below that, the rates are shown
// but the uplift, interval and p-value are not: they would swing with every
// conversion, and the z-test's normal approximation does not hold.
const (
	MinCustomers = 30
	MinOutcomes  = 5
)

// z95 is Φ⁻¹(0.975): a two-sided 95% interval spans ±z95 standard errors.
const z95 = 1.959963984540054

// Verdicts of a Comparison.
const (
	VerdictNotEnough = "not enough data yet"
	VerdictHigher    = "higher"
	VerdictLower     = "lower"
	VerdictUnclear   = "no clear difference"
)

// Comparison is the goal conversion of a group (the treatment, or a variant)
// against a baseline (the control group, or variant a).
type Comparison struct {
	// Method names the interval and test (the constant Method).
	Method string `json:"method"`
	// Enough is false while either group is below the not-enough-data rule
	// (MinCustomers, MinOutcomes); Verdict then says "not enough data yet".
	Enough bool `json:"enough_data"`
	// Uplift is the group's rate minus the baseline's, as a fraction: 0.05
	// is 5 percentage points. RelativeUplift is Uplift over the baseline's
	// rate (0.5 is 50% more conversions), nil when the baseline's rate is 0.
	Uplift         float64  `json:"uplift"`
	RelativeUplift *float64 `json:"relative_uplift"`
	// Low and High bound Uplift with 95% confidence (Newcombe's hybrid
	// score interval).
	Low  float64 `json:"interval_low"`
	High float64 `json:"interval_high"`
	// Z and P are the pooled two-proportion z-test's statistic and
	// two-sided p-value: the chance of a difference at least this large if
	// both groups converted alike.
	Z float64 `json:"z"`
	P float64 `json:"p_value"`
	// Verdict is VerdictNotEnough, VerdictHigher or VerdictLower (the whole
	// interval above or below 0), or VerdictUnclear (the interval holds 0).
	Verdict string `json:"verdict"`
}

// Compare compares x of n (the group) with baseX of baseN (the baseline). With
// an empty group there is no rate: everything but Method and Verdict is 0.
func Compare(x, n, baseX, baseN int) Comparison {
	c := Comparison{Method: Method, Verdict: VerdictNotEnough}
	if n <= 0 || baseN <= 0 || x < 0 || baseX < 0 || x > n || baseX > baseN {
		return c
	}
	p1, p2 := float64(x)/float64(n), float64(baseX)/float64(baseN)
	c.Uplift = p1 - p2
	if p2 > 0 {
		rel := c.Uplift / p2
		c.RelativeUplift = &rel
	}
	l1, u1 := Wilson(x, n)
	l2, u2 := Wilson(baseX, baseN)
	c.Low = c.Uplift - math.Hypot(p1-l1, u2-p2)
	c.High = c.Uplift + math.Hypot(u1-p1, p2-l2)
	c.Z, c.P = zTest(x, n, baseX, baseN)
	c.Enough = enough(x, n) && enough(baseX, baseN)
	switch {
	case !c.Enough:
	case c.Low > 0:
		c.Verdict = VerdictHigher
	case c.High < 0:
		c.Verdict = VerdictLower
	default:
		c.Verdict = VerdictUnclear
	}
	return c
}

// enough is the not-enough-data rule for one group.
func enough(x, n int) bool {
	return n >= MinCustomers && x >= MinOutcomes && n-x >= MinOutcomes
}

// Wilson is the 95% Wilson score interval of the proportion x of n (E. B.
// Wilson, 1927): the rates p whose score test z = (x/n − p)/√(p(1−p)/n) is
// within ±1.96,
//
//	(x + z²/2 ± z·√(x(n−x)/n + z²/4)) / (n + z²)
//
// It is 0, 0 for n = 0.
func Wilson(x, n int) (low, high float64) {
	if n <= 0 {
		return 0, 0
	}
	fx, fn, z2 := float64(x), float64(n), z95*z95
	center := (fx + z2/2) / (fn + z2)
	half := z95 * math.Sqrt(fx*(fn-fx)/fn+z2/4) / (fn + z2)
	return max(center-half, 0), min(center+half, 1)
}

// zTest is the pooled two-proportion z-test of x1 of n1 against x2 of n2: the
// statistic and its two-sided p-value. When nobody or everybody converted
// the rates cannot differ: z 0, p 1.
func zTest(x1, n1, x2, n2 int) (z, p float64) {
	pool := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0, 1
	}
	z = (float64(x1)/float64(n1) - float64(x2)/float64(n2)) / se
	return z, math.Erfc(math.Abs(z) / math.Sqrt2)
}
