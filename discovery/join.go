package discovery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// Member is the member that joins: its --name and
// --initial-advertise-peer-urls.
type Member struct {
	Name     string
	PeerURLs []string
}

// ID is the member's id in the new cluster: etcd's, salted with the
// discovery token (which replaces --initial-cluster-token).
func (m Member) ID(token string) uint64 { return storeactor.MemberID(m.PeerURLs, token) }

// etcd's retry schedule: 2^n seconds before the n-th retry, 256 s from the
// 8th on; the count starts again after each success.
const maxExponentialRetries = 8

// Join registers self with the discovery service, waits until the
// cluster's size members have registered, and returns the initial cluster
// they make (name -> peer URLs, as --initial-cluster gives it), which
// includes self. Requests the service fails are retried with etcd's
// backoff, timed by clock; a missing or bad size key, a full cluster, a
// refused login or ctx's end fail at once, as an *Error (etcd's
// DiscoveryError). Like etcd's, Join waits for ever for the others to
// register.
func Join(ctx context.Context, lg *zap.Logger, clock actors.Clock, cfg Config, self Member) (map[string][]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	urls, err := types.NewURLs(self.PeerURLs)
	if err != nil {
		return nil, err
	}
	// As etcd reads them (parsed, sorted), for the id and the value alike.
	self.PeerURLs = urls.StringSlice()
	value := types.URLsMap{self.Name: urls}.String()
	if lg == nil {
		lg = zap.NewNop()
	}
	if clock == nil {
		clock = actors.RealClock
	}
	lg = lg.With(zap.String("discovery-token", cfg.Token), zap.String("discovery-endpoints", strings.Join(cfg.Endpoints, ",")))
	spec := cfg.clientSpec()
	j := &joiner{lg: lg, clock: clock, token: cfg.Token, key: MemberKey(cfg.Token, self.ID(cfg.Token)),
		requestTimeout: spec.RequestTimeout, maxRetries: cfg.MaxRetries}
	if j.maxRetries == 0 {
		j.maxRetries = math.MaxUint32
	}
	s, err := j.run(ctx, spec, value)
	if err != nil {
		lg.Error("discovery failed to join cluster", zap.String("cluster", s), zap.Error(err))
		return nil, &Error{Op: "join", Err: err}
	}
	lg.Info("discovery joined cluster successfully", zap.String("cluster", s))
	return parseCluster(s, self)
}

// parseCluster turns the discovered --initial-cluster string into its map
// and checks it as etcd does (no URL twice), and that it names self as
// self registered: a name registered twice would merge two members.
func parseCluster(s string, self Member) (map[string][]string, error) {
	um, err := types.NewURLsMap(s)
	if err != nil {
		return nil, err
	}
	cluster := make(map[string][]string, len(um))
	seen := map[string]bool{}
	for name, urls := range um {
		for _, u := range urls.StringSlice() {
			if seen[u] {
				return nil, fmt.Errorf("discovery cluster %s has duplicate url", um)
			}
			seen[u] = true
		}
		cluster[name] = urls.StringSlice()
	}
	if got := cluster[self.Name]; !slices.Equal(got, self.PeerURLs) {
		return nil, fmt.Errorf("discovery cluster %s gives member %q peer URLs %v, not its own %v", um, self.Name, got, self.PeerURLs)
	}
	return cluster, nil
}

// joiner is one Join's state.
type joiner struct {
	lg             *zap.Logger
	clock          actors.Clock
	cli            *clientv3.Client
	token, key     string
	requestTimeout time.Duration
	retries        uint // since the last success
	maxRetries     uint
}

// run is etcd's joinCluster: check there is room, register, then read
// (and watch) the registrations until size members have registered.
func (j *joiner) run(ctx context.Context, spec *clientv3.ConfigSpec, value string) (string, error) {
	ccfg, err := clientv3.NewClientConfig(spec, j.lg)
	if err != nil {
		return "", err
	}
	ccfg.Context, ccfg.Logger = ctx, j.lg.Named("etcd-client")
	if j.cli, err = clientv3.New(*ccfg); err != nil {
		return "", err
	}
	defer j.cli.Close()
	if _, _, _, err := j.check(ctx); err != nil {
		return "", err
	}
	if err := j.register(ctx, value); err != nil {
		return "", err
	}
	for {
		reg, size, rev, err := j.check(ctx)
		if err != nil {
			return "", err
		}
		if len(reg.members) < size {
			if err := j.wait(ctx, reg, size, rev); err != nil {
				return "", err
			}
		}
		if len(reg.members) >= size {
			return reg.initialCluster(size)
		}
		// The watch ended early (the service went away or compacted):
		// read the registrations again.
	}
}

// check reads the size and the registrations, and fails with
// ErrFullCluster if size members registered before this one.
func (j *joiner) check(ctx context.Context) (*registry, int, int64, error) {
	for {
		size, err := j.size(ctx)
		if errors.Is(err, ErrSizeNotFound) || errors.Is(err, ErrBadSizeKey) {
			return nil, 0, 0, err
		}
		if err == nil {
			var reg *registry
			var rev int64
			if reg, rev, err = j.members(ctx); err == nil {
				j.retries = 0
				if reg.full(j.key, size) {
					return reg, size, rev, ErrFullCluster
				}
				return reg, size, rev, nil
			}
		}
		if err := j.backoff(ctx, "cluster status check"); err != nil {
			return nil, 0, 0, err
		}
	}
}

func (j *joiner) size(ctx context.Context) (int, error) {
	key := SizeKey(j.token)
	rctx, cancel := context.WithTimeout(ctx, j.requestTimeout)
	defer cancel()
	resp, err := j.cli.Get(rctx, key)
	if err != nil {
		j.lg.Warn("failed to get cluster size from discovery service", zap.String("clusterSizeKey", key), zap.Error(err))
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrSizeNotFound
	}
	size, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 0)
	if err != nil || size <= 0 {
		return 0, ErrBadSizeKey
	}
	return int(size), nil
}

// members reads every registration, and the revision to watch after.
func (j *joiner) members(ctx context.Context) (*registry, int64, error) {
	prefix := MembersPrefix(j.token)
	rctx, cancel := context.WithTimeout(ctx, j.requestTimeout)
	defer cancel()
	resp, err := j.cli.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		j.lg.Warn("failed to get cluster members from discovery service", zap.String("membersKeyPrefix", prefix), zap.Error(err))
		return nil, 0, err
	}
	reg := &registry{prefix: prefix}
	for _, kv := range resp.Kvs {
		j.add(reg, string(kv.Key), string(kv.Value), kv.CreateRevision)
	}
	return reg, resp.Header.Revision, nil
}

func (j *joiner) add(reg *registry, key, value string, createRev int64) {
	if err := reg.add(key, value, createRev); err != nil {
		j.lg.Warn(err.Error(), zap.String("memberKey", key), zap.String("memberInfo", value))
		return
	}
	j.lg.Info("found peer from discovery service", zap.String("memberKey", key), zap.String("memberInfo", value))
}

// register puts this member's key (again, after a crash: the key and its
// place in the order stay the same).
func (j *joiner) register(ctx context.Context, value string) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, j.requestTimeout)
		_, err := j.cli.Put(rctx, j.key, value)
		cancel()
		if err == nil {
			j.retries = 0
			j.lg.Info("register member itself successfully", zap.String("memberKey", j.key), zap.String("memberInfo", value))
			return nil
		}
		j.lg.Warn("failed to register members itself to the discovery service", zap.String("memberKey", j.key), zap.Error(err))
		if err := j.backoff(ctx, "register member itself"); err != nil {
			return err
		}
	}
}

// wait watches the registrations after rev until size members have
// registered. It returns early, with reg short, if the watch ends.
func (j *joiner) wait(ctx context.Context, reg *registry, size int, rev int64) error {
	j.lg.Info("waiting for peers from discovery service", zap.Int("clusterSize", size), zap.Int("found-peers", len(reg.members)))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range j.cli.Watch(wctx, MembersPrefix(j.token), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			j.lg.Warn("watching the discovery service failed", zap.Error(err))
			break
		}
		for _, ev := range resp.Events {
			j.add(reg, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.CreateRevision)
		}
		if len(reg.members) >= size {
			j.lg.Info("found all needed peers from discovery service", zap.Int("clusterSize", size), zap.Int("found-peers", len(reg.members)))
			return nil
		}
	}
	return ctx.Err()
}

// backoff waits before a retry, as etcd does, or fails with
// ErrTooManyRetries once the retries are spent.
func (j *joiner) backoff(ctx context.Context, step string) error {
	if j.retries >= j.maxRetries {
		return ErrTooManyRetries
	}
	j.retries++
	d := time.Duration(1<<min(j.retries, maxExponentialRetries)) * time.Second
	j.lg.Warn("retry connecting to discovery service", zap.String("reason", step), zap.Duration("backoff", d))
	wake := make(chan struct{})
	stop := j.clock.AfterFunc(d, func() { close(wake) })
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}
