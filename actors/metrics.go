package actors

import (
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/metrics"
)

// Supervision's families (MetaStore's own): a failure of a subsystem actor
// is a panic in its Receive, which the Guardian restarts it from — or, the
// MaxRestarts+1st time within RestartWindow, stops it for good (OnFatal).
var (
	actorPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metastore_actor_panics_total",
		Help: "Panics of the Guardian's child actors (each failure the Guardian handled), by actor.",
	}, []string{"actor"})
	actorRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "metastore_actor_restarts_total",
		Help: "Restarts of the Guardian's child actors after a panic, by actor.",
	}, []string{"actor"})
)

func init() { metrics.MustRegister(actorPanics, actorRestarts) }

// childName is the name a child was spawned with: its PID's id less the
// guardian's prefix ("$1/raft" -> "raft").
func childName(pid *actor.PID) string {
	id := pid.GetId()
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

// mailboxes are the Guardian's children's mailboxes, by child name, for
// the mailbox depth gauge. The Guardian gives each child protoactor's
// default unbounded mailbox and keeps it: reading its count (an atomic
// the mailbox keeps anyway) costs nothing between scrapes.
type mailboxes struct {
	mu sync.Mutex
	m  map[string]actor.Mailbox
}

// set records name's mailbox.
func (mb *mailboxes) set(name string, box actor.Mailbox) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.m == nil {
		mb.m = map[string]actor.Mailbox{}
	}
	mb.m[name] = box
}

// NewCollector reports, at scrape time, metastore_actor_mailbox_depth
// {actor}: the user messages waiting in each of g's children's mailboxes
// (protoactor's own count of its queue). A deep mailbox is an actor that
// cannot keep up (the raft or store actor on a slow disk, the watch hub
// under a flood of events).
func NewCollector(g *Guardian) prometheus.Collector { return &collector{g: g} }

var mailboxDepthDesc = prometheus.NewDesc("metastore_actor_mailbox_depth",
	"Messages waiting in each actor's mailbox.", []string{"actor"}, nil)

type collector struct{ g *Guardian }

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- mailboxDepthDesc }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	mb := &c.g.mailboxes
	mb.mu.Lock()
	defer mb.mu.Unlock()
	for name, box := range mb.m {
		ch <- prometheus.MustNewConstMetric(mailboxDepthDesc, prometheus.GaugeValue, float64(box.UserMessageCount()), name)
	}
}
