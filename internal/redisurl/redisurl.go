// Package redisurl turns a REDIS_URL into a go-redis client for one of the
// three topologies hookrelay runs on, chosen by the URL's scheme:
//
//	redis://[user:pass@]host:port/db                  a single node (rediss:// with TLS)
//	redis-sentinel://[user:pass@]s1:26379,s2:26379/master?db=0
//	                                                  a master found through Sentinels
//	redis-cluster://[user:pass@]n1:6379,n2:6379       a Cluster, from seed nodes
//
// (rediss-sentinel:// and rediss-cluster:// add TLS.) In every form the user
// and password are those of the data nodes; Sentinels that require their own
// login take sentinel_username and sentinel_password query parameters. The
// other query parameters are go-redis's own (dial_timeout, pool_size, …).
//
// Whatever the topology, the client always talks to masters: options that
// would send reads to replicas are refused, because hookrelay reads back
// what it has just written (a stream's pending entries, its marker groups).
package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology names the kind of deployment a URL points at.
type Topology string

// The topologies, one per URL scheme family.
const (
	Single   Topology = "single"
	Sentinel Topology = "sentinel"
	Cluster  Topology = "cluster"
)

// DefaultClusterStateReload is how old a Cluster client's map of slots to
// masters may grow before it is read again (CLUSTER SLOTS, one small reply).
// go-redis reloads it at once on MOVED, but a master that died answers
// nothing, so after a failover the client would keep dialling the dead node
// until the next reload: go-redis's own default (60 s) would be a minute
// without a stream. It bounds how soon delivery resumes after a Cluster
// failover, on top of the Cluster's own cluster-node-timeout.
const DefaultClusterStateReload = 2 * time.Second

// Default ports of addresses given without one.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// Options are a parsed REDIS_URL; exactly one of the option structs is set,
// the one of its Topology.
type Options struct {
	Topology Topology
	Single   *redis.Options
	Failover *redis.FailoverOptions
	Cluster  *redis.ClusterOptions
}

// replicaRouting are the go-redis options that would read from replicas;
// hookrelay refuses them (see the package comment).
var replicaRouting = []string{"read_only", "replica_only", "route_by_latency", "route_randomly", "use_disconnected_replicas"}

// Parse reads a REDIS_URL. Its errors never quote the URL, which may hold
// a password.
func Parse(raw string) (*Options, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a URL: want redis://, rediss://, redis-sentinel:// or redis-cluster://")
	}
	switch scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, plain(err)
		}
		return &Options{Topology: Single, Single: o}, nil
	case "redis-sentinel", "rediss-sentinel":
		return parseSentinel(strings.TrimSuffix(scheme, "-sentinel"), rest)
	case "redis-cluster", "rediss-cluster":
		return parseCluster(strings.TrimSuffix(scheme, "-cluster"), rest)
	}
	return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", scheme)
}

// NewClient builds the client of o's topology.
func (o *Options) NewClient() redis.UniversalClient {
	switch o.Topology {
	case Sentinel:
		return redis.NewFailoverClient(o.Failover)
	case Cluster:
		return redis.NewClusterClient(o.Cluster)
	}
	return redis.NewClient(o.Single)
}

// NewClient parses raw and builds its client; the caller closes it.
func NewClient(raw string) (redis.UniversalClient, error) {
	o, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return o.NewClient(), nil
}

// multiHost is a URL whose authority lists several comma-separated
// addresses, split into the first (in u, parsed as a URL of scheme) and the
// others.
type multiHost struct {
	u      *url.URL
	others []string
}

// splitHosts parses "userinfo@h1,h2,.../path?query" (the part after the
// scheme), giving each address without a port the port def.
func splitHosts(scheme, rest, def string) (*multiHost, error) {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	var addrs []string
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			return nil, errors.New("empty address in the host list")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			switch {
			case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"): // [IPv6] without a port
				h = net.JoinHostPort(h[1:len(h)-1], def)
			case !strings.Contains(h, ":"):
				h = net.JoinHostPort(h, def)
			}
		}
		if host, port, err := net.SplitHostPort(h); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("bad address %q: want host:port", h)
		}
		addrs = append(addrs, h)
	}
	u, err := url.Parse(scheme + "://" + userinfo + addrs[0] + tail)
	if err != nil {
		return nil, plain(err)
	}
	if u.Fragment != "" {
		return nil, errors.New("a fragment (#…) means nothing here")
	}
	return &multiHost{u: u, others: addrs[1:]}, nil
}

// goRedisURL is m as go-redis's own multi-address form: the first address
// as host, the others as addr parameters, with q as the query.
func (m *multiHost) goRedisURL(user *url.Userinfo, q url.Values) string {
	for _, a := range m.others {
		q.Add("addr", a)
	}
	u := url.URL{Scheme: m.u.Scheme, User: user, Host: m.u.Host, RawQuery: q.Encode()}
	return u.String()
}

func parseSentinel(scheme, rest string) (*Options, error) {
	m, err := splitHosts(scheme, rest, defaultSentinelPort)
	if err != nil {
		return nil, err
	}
	master, err := url.PathUnescape(strings.Trim(m.u.EscapedPath(), "/"))
	if err != nil || master == "" || strings.Contains(master, "/") {
		return nil, errors.New("want the master's name as the path: redis-sentinel://host:26379,…/<master-name>")
	}
	q := m.u.Query()
	if err := refuseReplicaRouting(q); err != nil {
		return nil, err
	}
	for _, k := range []string{"master_name", "username", "password"} {
		if q.Has(k) {
			return nil, fmt.Errorf("option %s: give it in the URL itself (the path is the master's name, the user and password those of the data nodes)", k)
		}
	}
	q.Set("master_name", master)
	// The URL's credentials are the data nodes'; the Sentinels' come as
	// parameters. go-redis's own form has it the other way round.
	if m.u.User != nil {
		q.Set("username", m.u.User.Username())
		if p, ok := m.u.User.Password(); ok {
			q.Set("password", p)
		}
	}
	var sentinelUser *url.Userinfo
	if su, sp := q.Get("sentinel_username"), q.Get("sentinel_password"); su != "" || sp != "" {
		sentinelUser = url.UserPassword(su, sp)
	}
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	o, err := redis.ParseFailoverURL(m.goRedisURL(sentinelUser, q))
	if err != nil {
		return nil, plain(err)
	}
	return &Options{Topology: Sentinel, Failover: o}, nil
}

func parseCluster(scheme, rest string) (*Options, error) {
	m, err := splitHosts(scheme, rest, defaultPort)
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(m.u.Path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("database %q: a Cluster has only database 0", p)
	}
	q := m.u.Query()
	if err := refuseReplicaRouting(q); err != nil {
		return nil, err
	}
	o, err := redis.ParseClusterURL(m.goRedisURL(m.u.User, q))
	if err != nil {
		return nil, plain(err)
	}
	o.ClusterStateReloadInterval = DefaultClusterStateReload
	return &Options{Topology: Cluster, Cluster: o}, nil
}

func refuseReplicaRouting(q url.Values) error {
	for _, k := range replicaRouting {
		if q.Has(k) {
			return fmt.Errorf("option %s would read from replicas, which lag their master: hookrelay reads back what it has just written, so it always talks to masters", k)
		}
	}
	return nil
}

// plain drops the URL that net/url quotes in its errors (it may hold a
// password) and go-redis's "redis: " prefix.
func plain(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return errors.New(strings.TrimPrefix(err.Error(), "redis: "))
}
