package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/store"
)

var campaignCmd = &command{
	name:    "campaign",
	summary: "List campaigns and whether they send; pause or resume one",
	usage:   "campaign list | pause ID [--reason TEXT] | resume ID  [--campaigns DIR]",
	help: `retain campaign list shows every loaded campaign, and for a paused one when and
why it stopped. A campaign pauses by itself when its complaint or bounce rate
over its last sends passes lifecycle.yaml's deliverability: thresholds
(pause_complaint_rate, default 0.3%; pause_bounce_rate, default 5%; over
pause_window sends, default 1000), and stays paused until resumed here: look
at the bounces and complaints first (retain report, retain suppress list).

While a campaign is paused its due emails wait (nothing is skipped or lost);
resume makes them due at once, and starts the rate window anew.
retain campaign pause stops a campaign by hand, the same way.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS (see retain help worker).

Examples:
  retain campaign list
  retain campaign pause second-order --reason "wrong coupon code"
  retain campaign resume second-order`,
	run: runCampaign,
}

func runCampaign(c *command, e *env, args []string) int {
	fs := c.flags()
	reason := fs.String("reason", "", "why the campaign is paused by hand (pause)")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(e.stderr, "retain campaign: %s\nUsage: retain %s\n", msg, c.usage)
		return exitUsage
	}
	if len(pos) == 0 {
		return usage("say what to do: list, pause ID or resume ID")
	}
	action := pos[0]
	switch {
	case action == "list" && len(pos) != 1:
		return usage("list takes no argument")
	case (action == "pause" || action == "resume") && len(pos) != 2:
		return usage(action + " takes one campaign ID")
	case action != "list" && action != "pause" && action != "resume":
		return usage(fmt.Sprintf("unknown action %q: use list, pause or resume", action))
	}
	ctx := context.Background()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	set := ws.engine.Set()
	if action == "list" {
		return listCampaigns(ctx, e, ws.store, set)
	}
	id := pos[1]
	unknown := set.Campaign(id) == nil
	if unknown && action == "resume" {
		// A campaign removed while paused is resumed to clear it.
		if was, _, err := bounce.Resume(ctx, ws.store, id, time.Now()); err == nil && was {
			fmt.Fprintf(e.stdout, "resumed %s (no longer loaded)\n", id)
			return exitOK
		}
	}
	if unknown {
		var ids []string
		for _, camp := range set.Campaigns {
			ids = append(ids, camp.ID)
		}
		fmt.Fprintf(e.stderr, "retain campaign: no campaign %q is loaded%s; the campaigns are %v\n", id, campaign.DidYouMean(id, ids), ids)
		return exitProblems
	}
	switch action {
	case "pause":
		why := cmpOr(*reason, "paused by hand (retain campaign pause)")
		done, err := ws.store.PauseCampaign(ctx, id, why, time.Now())
		if err != nil {
			fmt.Fprintf(e.stderr, "retain campaign: %v\n", err)
			return exitProblems
		}
		if !done {
			fmt.Fprintf(e.stdout, "%s was paused already\n", id)
			return exitOK
		}
		fmt.Fprintf(e.stdout, "paused %s: its emails wait until retain campaign resume %s\n", id, id)
	case "resume":
		was, woken, err := bounce.Resume(ctx, ws.store, id, time.Now())
		if err != nil {
			fmt.Fprintf(e.stderr, "retain campaign: %v\n", err)
			return exitProblems
		}
		if !was {
			fmt.Fprintf(e.stdout, "%s was not paused\n", id)
			return exitOK
		}
		fmt.Fprintf(e.stdout, "resumed %s: %d customers with an email waiting are due now\n", id, woken)
	}
	return exitOK
}

func listCampaigns(ctx context.Context, e *env, st *store.Store, set *campaign.Set) int {
	paused, err := st.Paused(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain campaign: %v\n", err)
		return exitProblems
	}
	var broadcasts []string
	for _, camp := range set.Campaigns {
		if camp.IsBroadcast() {
			broadcasts = append(broadcasts, camp.ID)
		}
	}
	states, err := st.BroadcastStates(ctx, broadcasts)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain campaign: %v\n", err)
		return exitProblems
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CAMPAIGN\tSTEPS\tSTATUS")
	for _, camp := range set.Campaigns {
		status := "sending"
		if camp.IsBroadcast() {
			status = "broadcast at " + camp.Broadcast.SendAt.Source + ": "
			switch s := states[camp.ID]; {
			case s == nil:
				status += "audience decided " + camp.Broadcast.SendAt.Earliest().UTC().Format("2006-01-02 15:04 UTC")
			case s.State == store.BroadcastDone:
				status += "sending (audience decided " + s.Started.UTC().Format("2006-01-02 15:04 UTC") + ")"
			default:
				status += s.State
			}
		}
		if p, ok := paused[camp.ID]; ok {
			status = "PAUSED since " + p.At.UTC().Format("2006-01-02 15:04 UTC") + ": " + p.Reason
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", camp.ID, len(camp.Steps), status)
	}
	tw.Flush()
	var gone []string
	for id := range paused {
		if set.Campaign(id) == nil {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		fmt.Fprintf(e.stdout, "%s is paused but no longer loaded (retain campaign resume %s clears it)\n", id, id)
	}
	return exitOK
}
