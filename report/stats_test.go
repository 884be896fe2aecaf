package report

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10f, want %.10f (±%g)", what, got, want, tol)
	}
}

// TestCompareHoldoutByHand checks a holdout of 10% against values worked out
// by hand from the formulas in stats.go (z = 1.959964, z² = 3.841459):
//
//	control    40 of  400: p₂ = 0.10
//	treatment 540 of 3600: p₁ = 0.15
//	uplift d = 0.15 − 0.10 = 0.05 (5 points); relative 0.05 / 0.10 = 0.5 (+50%)
//
// Wilson, (x + z²/2 ± z·√(x(n−x)/n + z²/4)) / (n + z²):
//
//	control:   centre (40 + 1.920729) / 403.841459 = 0.103805
//	           half   1.959964 · √(40·360/400 + 0.960365) / 403.841459
//	                = 1.959964 · √36.960365 / 403.841459
//	                = 1.959964 · 6.079504 / 403.841459 = 0.029506
//	           l₂ = 0.074299, u₂ = 0.133311
//	treatment: centre (540 + 1.920729) / 3603.841459 = 0.150373
//	           half   1.959964 · √(540·3060/3600 + 0.960365) / 3603.841459
//	                = 1.959964 · √459.960365 / 3603.841459
//	                = 1.959964 · 21.446687 / 3603.841459 = 0.011664
//	           l₁ = 0.138709, u₁ = 0.162037
//
// Newcombe:
//
//	lower = 0.05 − √((0.15 − 0.138709)² + (0.133311 − 0.10)²)
//	      = 0.05 − √(0.011291² + 0.033311²) = 0.05 − 0.035172 = 0.014828
//	upper = 0.05 + √((0.162037 − 0.15)² + (0.10 − 0.074299)²)
//	      = 0.05 + √(0.012037² + 0.025701²) = 0.05 + 0.028380 = 0.078380
//
// z-test: pooled p = 580 / 4000 = 0.145
//
//	SE = √(0.145 · 0.855 · (1/3600 + 1/400)) = √0.000344375 = 0.0185573
//	z  = 0.05 / 0.0185573 = 2.69435
//	P  = erfc(2.69435 / √2) = 0.00705
func TestCompareHoldoutByHand(t *testing.T) {
	l2, u2 := Wilson(40, 400)
	near(t, "control l₂", l2, 0.074299, 1e-6)
	near(t, "control u₂", u2, 0.133311, 1e-6)
	l1, u1 := Wilson(540, 3600)
	near(t, "treatment l₁", l1, 0.138709, 1e-6)
	near(t, "treatment u₁", u1, 0.162037, 1e-6)

	c := Compare(540, 3600, 40, 400)
	near(t, "uplift", c.Uplift, 0.05, 1e-12)
	if c.RelativeUplift == nil {
		t.Fatal("relative uplift nil, want 0.5")
	}
	near(t, "relative uplift", *c.RelativeUplift, 0.5, 1e-12)
	near(t, "interval low", c.Low, 0.014828, 1e-6)
	near(t, "interval high", c.High, 0.078380, 1e-6)
	near(t, "z", c.Z, 2.69435, 1e-5)
	near(t, "p", c.P, 0.00705, 1e-5)
	if !c.Enough || c.Verdict != VerdictHigher || c.Method != Method {
		t.Errorf("enough %v, verdict %q, method %q; want enough, %q, %q", c.Enough, c.Verdict, c.Method, VerdictHigher, Method)
	}

	// The other way round: the same interval, mirrored.
	r := Compare(40, 400, 540, 3600)
	near(t, "mirrored low", r.Low, -0.078380, 1e-6)
	near(t, "mirrored high", r.High, -0.014828, 1e-6)
	near(t, "mirrored z", r.Z, -2.69435, 1e-5)
	near(t, "mirrored p", r.P, c.P, 1e-15)
	if r.Verdict != VerdictLower {
		t.Errorf("mirrored verdict %q, want %q", r.Verdict, VerdictLower)
	}
}

// TestWilsonMatchesPublishedIntervals: Newcombe's companion paper on one
// proportion (Statistics in Medicine 17, 1998, 857–872, method 3, the score
// interval without continuity correction) gives these bounds, to 4 decimals.
func TestWilsonMatchesPublishedIntervals(t *testing.T) {
	for _, tc := range []struct {
		x, n      int
		low, high float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0, 0.1611},
		{1, 29, 0.0061, 0.1718},
	} {
		l, h := Wilson(tc.x, tc.n)
		near(t, "low", l, tc.low, 5e-5)
		near(t, "high", h, tc.high, 5e-5)
	}
}

// TestWilsonBoundsPassTheScoreTest checks the definition itself: at each bound
// p the score statistic (x/n − p)/√(p(1−p)/n) is exactly ±1.96.
func TestWilsonBoundsPassTheScoreTest(t *testing.T) {
	for _, xn := range [][2]int{{40, 400}, {540, 3600}, {1, 29}, {7, 9}} {
		x, n := xn[0], xn[1]
		l, h := Wilson(x, n)
		phat := float64(x) / float64(n)
		score := func(p float64) float64 { return (phat - p) / math.Sqrt(p*(1-p)/float64(n)) }
		near(t, "score at low", score(l), z95, 1e-9)
		near(t, "score at high", score(h), -z95, 1e-9)
	}
}

// TestNewcombeMatchesPublishedIntervals: Newcombe 1998 (eleven methods),
// Table II, method 10, the hybrid score interval of p₁ − p₂.
func TestNewcombeMatchesPublishedIntervals(t *testing.T) {
	for _, tc := range []struct {
		x1, n1, x2, n2 int
		low, high      float64
	}{
		{56, 70, 48, 80, 0.0524, 0.3339},
		{9, 10, 3, 10, 0.1705, 0.8090},
		{5, 56, 0, 29, -0.0381, 0.1926},
		{0, 10, 0, 20, -0.1611, 0.2775},
		{10, 10, 0, 20, 0.6791, 1.0000},
	} {
		c := Compare(tc.x1, tc.n1, tc.x2, tc.n2)
		near(t, "low", c.Low, tc.low, 5e-5)
		near(t, "high", c.High, tc.high, 5e-5)
	}
}

func TestNotEnoughDataYet(t *testing.T) {
	for _, tc := range []struct {
		name               string
		x, n, baseX, baseN int
		enough             bool
	}{
		{"both fine", 10, 100, 8, 100, true},
		{"exactly at the rule", 5, 30, 5, 30, true},
		{"group under 30 customers", 10, 29, 10, 100, false},
		{"baseline under 30 customers", 10, 100, 10, 29, false},
		{"4 conversions", 4, 100, 10, 100, false},
		{"4 non-conversions", 96, 100, 10, 100, false},
		{"baseline 4 conversions", 10, 100, 4, 100, false},
		{"baseline 4 non-conversions", 10, 100, 96, 100, false},
		{"empty group", 0, 0, 10, 100, false},
	} {
		c := Compare(tc.x, tc.n, tc.baseX, tc.baseN)
		if c.Enough != tc.enough || (c.Verdict == VerdictNotEnough) == tc.enough {
			t.Errorf("%s: enough %v, verdict %q; want enough %v", tc.name, c.Enough, c.Verdict, tc.enough)
		}
	}
}

func TestCompareEdges(t *testing.T) {
	// No conversions in the baseline: no relative uplift.
	c := Compare(5, 50, 0, 50)
	if c.RelativeUplift != nil {
		t.Errorf("relative uplift %v of a 0%% baseline, want nil", *c.RelativeUplift)
	}
	// Nobody converted anywhere: the rates cannot differ.
	c = Compare(0, 50, 0, 50)
	if c.Z != 0 || c.P != 1 || c.Uplift != 0 {
		t.Errorf("0 of 50 against 0 of 50: z %v, p %v, uplift %v; want 0, 1, 0", c.Z, c.P, c.Uplift)
	}
	// Equal rates: interval around 0, no clear difference.
	c = Compare(20, 100, 20, 100)
	if c.Verdict != VerdictUnclear || c.Low >= 0 || c.High <= 0 || c.P != 1 {
		t.Errorf("equal rates: %+v", c)
	}
	// An empty group compares nothing.
	c = Compare(0, 0, 3, 10)
	if c.Enough || c.Uplift != 0 || c.Low != 0 || c.High != 0 || c.Verdict != VerdictNotEnough {
		t.Errorf("empty group: %+v", c)
	}
	// Impossible counts (more conversions than customers, from counters
	// that disagree) compare nothing either.
	c = Compare(11, 10, 3, 10)
	if c.Enough || c.Uplift != 0 {
		t.Errorf("11 of 10: %+v", c)
	}
}
