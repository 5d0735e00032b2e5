package speaker

import "github.com/ironlb/ironlb/internal/announce"

func nodes(ns ...announce.Node) map[string]announce.Node {
	out := map[string]announce.Node{}
	for _, n := range ns {
		out[n.Name] = n
	}
	return out
}

func ready(name string) announce.Node {
	return announce.Node{Name: name, Ready: true, Labels: map[string]string{"l2": "yes"}}
}
