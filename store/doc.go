// Package store is retain's memory of customers, kept in Redis through go-redis:
// each customer's state, stage history, recent events, consent log and applied
// event IDs, the wake index that lets time rules touch only the customers due,
// the email index, the suppression list and a record of the campaigns deployed.
//
// It only persists. Deciding what a customer's state becomes is the lifecycle
// engine's job (package lifecycle), which Update and Sweep call back into;
// sending and its ledger belong to the queue and mailer packages.
//
//	s := store.New(rdb, "")
//	err := s.Update(ctx, "cus_42", ev.ID, func(c *lifecycle.Customer) (*store.Change, error) {
//		changes, err := engine.Apply(c, ev) // c is nil for a new customer: create it first
//		...
//		return &store.Change{Customer: c, Event: &ev, Wake: engine.NextWake(c)}, err
//	})
//	if errors.Is(err, store.ErrDuplicate) { /* imported before: nothing changed */ }
//
// # Keys
//
// Every key starts with the prefix given to New ("retain:" by default, written
// {p} below). The customer ID always ends the key, so an ID holding ':' cannot
// reach another customer's keys.
//
// This is layout 2 (Layout; {p}layout holds the version). Customers are hashed
// into Shards (16) virtual shards by ID (ShardOf: FNV-1a mod 16), and every key
// of a customer, its shard's indexes, leases and locks, its send ledger entries
// (package queue) and the report counters its writes move (package report)
// start with {s} = {p}{TAG}:, the shard's prefix, whose Redis Cluster hash tag
// puts them all in one hash slot (ShardPrefix; "retain:{10}:" for shard 0). So
// a customer's write is one MULTI/EXEC in one slot, on one Redis or on a
// Cluster node, and the scheduler claims, sweeps and requeues shard by shard.
// The tags are chosen so the 16 shards' slots spread evenly over 0..16383 (shard
// i in the i-th sixteenth), so a Cluster's masters, which hold contiguous slot
// ranges, get about as many shards each. Keys named by address (email,
// suppressed) and the process-wide keys stay untagged: every command on them
// touches that one key. Why 16: enough for a Cluster of up to 16 masters, few
// enough that a scheduler's batches stay full (a lease holds one shard's
// customers) and reading every shard (the backlog, the report) stays one
// pipeline. Layout 1 had no tags and one due and one wake index; retain migrate
// moves its keys.
//
//	key              type        contents                                why
//	{s}c:{id}        string      the Customer as compact JSON             one blob is the smallest form (a hash
//	                                                                      loses its listpack encoding once a
//	                                                                      value passes 64 bytes) and is read and
//	                                                                      written whole anyway; WATCHed by Update
//	{s}stages:{id}   list        StageChange JSON, oldest first           full stage history, append-only
//	{s}events:{id}   list        Event JSON, newest first, at most 50     what the customer did lately
//	{s}consent:{id}  list        the consent events' JSON (IsConsent:     the full record of subscription changes
//	                             unsubscribed, preferences_changed, ...)  (GDPR: who, when, how): never trimmed,
//	                             oldest first                             written with the change (consent.go)
//	{s}seen:{id}     sorted set  applied event IDs, scored by event       idempotency: an ID in it is not applied
//	                             time (unix ms)                           again; a zset stays a compact listpack
//	                                                                      up to 128 IDs, where a set of strings is
//	                                                                      a hash table from the first (Redis 7.0)
//	{s}wake          sorted set  customer ID of the shard, scored by the unix ms when   Due reads only the due range: a sweep
//	                             its next time rule can fire              costs what is due, not every customer
//	{s}due           sorted set  customer ID of the shard, scored by the unix ms when   ClaimDue reads only the due range; a
//	                             its next email is due, plus LeasedOffset customer in flight leaves it, and its
//	                             (2^44) while a scheduler's lease holds   score still tells its real due time
//	{s}lease:{id}    string      the token of the Lease that holds the    a lease lives in a key of its own: no
//	                             customer (a scheduler's batch, or an     write of the customer can end it, and only
//	                             event handler); PX: its time to live    its token renews or releases it
//	{s}lease-fresh:{token}                                                TakeLease: a worker starting on a fresh
//	                 string      "1", for half a claimed lease's time     lease need not renew it (one EXISTS per
//	                             to live                                  batch instead of a script per customer)
//	{s}ledger:{id}:{campaign}:{n}:{slug}                                  the send ledger, package queue's (LedgerKey
//	                 string      sent, unknown, failed, or                in ledger.go): claimed before SMTP, the
//	                             claimed:{owner}:{token}; expires after   outcome after; LedgerStates reads a
//	                             the workers' LedgerKeep (30 days)        customer's in one MGET (the people page)
//	{p}email:{addr}  string      customer ID of the lower-cased address   CustomerByEmail; one address per customer;
//	                             ("ID\nUNIXMS" while a write is taking  a key per address, so creating customers
//	                             it: email.go)                            in parallel never contends on one key
//	{p}suppressed    hash        lower-cased email -> {"reason","at"}     addresses never to mail again; kept by
//	                                                                      Delete, as it is about the address;
//	                                                                      paged with HSCAN (suppress.go)
//	{p}campaigns:deployed                                                 RecordDeploy: what the last worker or
//	                 string      the campaign.Manifest JSON of the        scheduler to start ran, so the next start
//	                             campaign set running (hash, step IDs)    logs which steps a deploy added, removed
//	                                                                      or renamed; about 140 B per step,
//	                                                                      written once per process start
//	{p}scheduler:tick                                                     RecordTick, one SET per tick; Backlog
//	                 string      unix ms of the last scheduler tick       reads it with the lowest {s}due score for
//	                                                                      /healthz and /metrics: emails overdue
//	                                                                      and no scheduler ticking
//	{p}soft:{addr}   sorted set  report ID -> unix ms of each temporary   CountSoftBounce (package bounce): N within
//	                             delivery failure of the lower-cased      the window suppress the address; expires
//	                             address                                  a window after the last failure
//	{p}paused        hash        campaign ID -> {"reason","at"}           campaigns that send nothing until resumed
//	                                                                      (auto-pause, retain campaign pause); the
//	                                                                      workers read it once a second
//	{p}pause-window:{campaign}                                            RateWindow: the campaign's sends, bounces
//	                 hash        "from", "next" -> "sent bounced          and complaints when its rate window began
//	                             complained" totals                       and when the next one began (auto-pause)
//	{p}failed-events list        FailedEvent JSON, newest first, at       the dead letters: events the workers
//	                             most MaxFailedEvents (10,000)            could not apply, for `retain event
//	                                                                      --failed` and --replay; not under
//	                                                                      events:, a customer's key
//	{p}stats:conditions                                                   package queue (ConditionErrors): counted
//	                 hash        campaign (or lifecycle.yaml) -> number   by workers and schedulers, exported by
//	                             of conditions that failed while running  retain web as retain_condition_errors_total
//	{s}lock:requeue  string      "1" while RequeueLost's turn in the      once per lease time per shard, whichever
//	                             shard holds                              scheduler comes first
//	{p}layout        string      the layout version, "2"                  CheckLayout: a process refuses another
//
// # Memory
//
// Measured with MEMORY USAGE on Redis 7.0 (TestMemoryUsage logs them), for a
// customer with 4 attributes, 3 counters and a 20-byte ID:
//
//	customer key, no enrollment        616 B (472 B of JSON)
//	per enrollment (two steps passed)  256 B
//	wake index entry                   118 B per customer
//	email index entry                  112 B per customer
//	recent events                      126 B per event at 50 events (111 B of JSON), 296 B for the first
//	seen event IDs                     ~40 B per ID up to 128 IDs, then 118 B (the zset turns into a
//	                                   skiplist; zset-max-listpack-entries raises the bound)
//	stage history                      144 B per change at 10, 280 B for the first
//
// So a customer with one enrollment and no events costs about 1.1 KB; its recent
// events, up to 6.3 KB, are the largest part once it has many.
//
// # Types
//
// Attributes hold strings, ints, float64s, bools and time.Times. Plain JSON
// would bring ints back as float64 and times as strings, so they are written
// with a small typed encoding (see value.go) and read back as the same types,
// whatever lifecycle.yaml declares at the time of reading. Update refuses an
// attribute of any other type. Event data uses the same encoding and also keeps
// nested maps and slices.
//
// # Concurrency
//
// Update is a read-modify-write under WATCH/MULTI/EXEC on the customer key: a
// write that lost the race is retried with a fresh read, up to MaxAttempts
// times. Every write of a customer rewrites its key, including one that changes
// only its wake time or events, so every writer notices every other.
//
// The email index is not in that transaction: its keys are named by address,
// the customer's by ID, and on Redis Cluster no transaction spans both. A write
// that gives the customer an address reserves it first (one script on the
// address's key: a pending claim, unless another customer holds it, then
// ErrEmailTaken), writes the customer, then confirms the claim and releases
// the old address (compare-and-delete). A claim a writer left pending is
// respected for a minute, then belongs to whoever has the address in its
// customer record, and is otherwise free: so concurrent writers of one address
// get it once, and a writer that dies between the steps blocks the address
// for a minute at most.
//
// The rule Update relies on: only the customer key is WATCHed, yet every
// other key of the customer is written safely, because each of them is only
// ever written in the same MULTI/EXEC as the customer key — the stage
// history, the recent events, the consent log, the seen set, and the
// customer's entries in the wake and due indexes. A writer of any of them
// therefore also rewrites the
// customer key, and the WATCH of a concurrent Update sees it. The email index
// is read to decide an Update, and kept by its own protocol (above). Keys
// written outside Update — the lease keys (ClaimDue, HoldLease,
// ReleaseLease), the suppression list, the send ledger and the report
// counters' own scripts — are never read to decide an Update,
// so no Update can act on a stale copy of them; and none of them writes the
// wake index or a customer key. ClaimDue, ReleaseLease and RequeueLost do
// move due scores in and out of the LeasedOffset band without the customer
// key, but only as a hint of where to scan: a lease lives in its lease key,
// an Update that writes the real due time over the band ends no lease (the
// customer is scanned, and found held, until its batch is written back), and
// an Update that reads a score in the band writes its own due time, which
// always differs from it. (Before leases had keys of their own, the lease
// was the due score, and an Update could end it by writing over it.) A failed read of the seen
// set is an error, never "not seen": applying an event twice is worse than
// applying it late.
//
// Sweep handles SweepBatch due customers per transaction and re-reads each wake
// time under the WATCH, skipping customers no longer due. Two sweeps running at
// once (two scheduler processes, or a sweep and an event) therefore apply the
// engine once per wake time: the loser's EXEC fails, and its per-customer retry
// finds the wake moved on.
//
// Store.Also, when set, queues more commands in the same MULTI/EXEC as each
// customer write (package report keeps its counters so): a retried write adds
// them once.
//
// # Limits
//
// The seen set grows with every event that carries an ID; nothing trims it.
// A shard's due and wake indexes hold a sixteenth of the customers each; one
// shard is one node's, so a Cluster spreads customers over at most 16 masters.
package store
