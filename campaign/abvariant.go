package campaign

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// abFile is one file of an A/B variant as read, before it joins its step.
type abFile struct {
	// base is the step's own file name ("02-first-project.md"), name the
	// variant's letter, locale the file's locale ("" for the variant's
	// default-locale file).
	base, name, locale string
	ct                 *Content
	// v holds the split read from the default-locale file.
	v *ABVariant
}

// abFileName is the name of A/B variant name's file of the step whose file
// (or one of whose variant files) is at path: "02-first-project.b.md".
func abFileName(path, name string) string {
	m := stepFileRE.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return "NN-name." + name + ".md"
	}
	return m[1] + "-" + m[2] + "." + name + ".md"
}

// split reads an A/B variant's split: (n, nil when missing) into v: a whole
// percentage from 1 to 99.
func (d *doc) split(root, n *yaml.Node, v *ABVariant) {
	if n == nil {
		d.errorf(root, "split is missing: say which share of the customers get variant %s, in percent, as in split: 50", v.Name)
		return
	}
	v.SplitPos = d.pos(n)
	var pct int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&pct) != nil || pct < 1 || pct > 99 {
		d.errorf(n, "split must be a whole percentage from 1 to 99 (of the customers who get variant %s), found %s", v.Name, kindName(n))
		return
	}
	v.Split = pct
}

// attachAB joins the A/B variant files of a campaign to their steps (byName:
// the steps by file name) and checks that each variant has its default-locale
// file, exactly the locales of its step, and that the splits leave customers
// for the step itself.
//
// A variant must come in every locale its step has, and in no other: a
// customer gets the variant's file in their locale as ContentFor picks a
// locale variant, so a Dutch customer assigned variant b would otherwise read
// English while the Dutch customers of variant a read Dutch, and the test
// would compare languages, not emails.
func attachAB(files []abFile, byName map[string]*Step, probs *Problems) {
	byBase := map[string][]abFile{}
	for _, f := range files {
		byBase[f.base] = append(byBase[f.base], f)
	}
	for _, base := range slices.Sorted(maps.Keys(byBase)) {
		st := byName[base]
		if st == nil {
			for _, f := range byBase[base] {
				probs.Add(f.ct.Path, Pos{1, 1}, "A/B variant %s has no base step %s: add the step's own file first", filepath.Base(f.ct.Path), base)
			}
			continue
		}
		variants := map[string]*ABVariant{}
		for _, f := range byBase[base] {
			if f.locale == "" {
				f.v.Content = f.ct
				variants[f.name] = f.v
			}
		}
		for _, f := range byBase[base] {
			if f.locale == "" {
				continue
			}
			v := variants[f.name]
			if v == nil {
				probs.Add(f.ct.Path, Pos{1, 1}, "locale variant %s has no A/B variant %s: add the variant's default-locale file first", filepath.Base(f.ct.Path), abFileName(f.ct.Path, f.name))
				continue
			}
			if v.Locales == nil {
				v.Locales = map[string]*Content{}
			}
			v.Locales[f.locale] = f.ct
		}
		total := 0
		var splits []string
		for _, name := range slices.Sorted(maps.Keys(variants)) {
			v := variants[name]
			st.AB = append(st.AB, v)
			for _, loc := range slices.Sorted(maps.Keys(st.Variants)) {
				if v.Locales[loc] == nil {
					probs.Add(v.Content.Path, Pos{1, 1}, "A/B variant %s has no %s file: add %s, as the step has %s (customers in %s get every variant in their language)",
						name, loc, localeFileName(v.Content.Path, loc), filepath.Base(st.Variants[loc].Path), loc)
				}
			}
			for _, loc := range slices.Sorted(maps.Keys(v.Locales)) {
				if st.Variants[loc] == nil {
					probs.Add(v.Locales[loc].Path, Pos{1, 1}, "the step has no %s file (%s): add it, or remove this one, so that customers in %s get every variant in one language",
						loc, localeFileName(st.Content.Path, loc), loc)
				}
			}
			if v.Split > 0 {
				total += v.Split
				splits = append(splits, fmt.Sprintf("%s %d%%", name, v.Split))
			}
		}
		if last := st.AB[len(st.AB)-1]; total >= 100 && last.Split > 0 {
			probs.Add(last.Content.Path, last.SplitPos, "the splits of step %s's A/B variants add up to %d%% (%s): leave some customers for the step itself (variant a)",
				st.Slug, total, strings.Join(splits, ", "))
		}
	}
}

// localeFileName is the name of the locale variant loc of the file at path:
// "02-first-project.b.nl.md" for 02-first-project.b.md.
func localeFileName(path, loc string) string {
	return strings.TrimSuffix(filepath.Base(path), ".md") + "." + loc + ".md"
}
