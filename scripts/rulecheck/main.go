// rulecheck validates Prometheus alerting rules and PromQL expressions with Prometheus's own
// parsers (model/rulefmt, as `promtool check rules` does, and promql/parser).
//
//	rulecheck rules FILE...   check rule files (groups, names, expressions, templates)
//	rulecheck exprs           check a JSON list of PromQL expressions on stdin
//
// Exit status 1 lists every problem; 0 prints how many rules or expressions were checked.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rulecheck rules FILE... | rulecheck exprs < list.json")
		os.Exit(2)
	}
	failed := false
	count := 0
	promql := parser.NewParser(parser.Options{})
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch os.Args[1] {
	case "rules":
		for _, file := range os.Args[2:] {
			groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, promql, logger)
			for _, err := range errs {
				fmt.Printf("%s: %v\n", file, err)
				failed = true
			}
			if groups != nil {
				for _, group := range groups.Groups {
					count += len(group.Rules)
				}
			}
		}
	case "exprs":
		var exprs []string
		if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
			fmt.Printf("stdin: %v\n", err)
			os.Exit(1)
		}
		for _, expr := range exprs {
			if _, err := promql.ParseExpr(expr); err != nil {
				fmt.Printf("%q: %v\n", expr, err)
				failed = true
			}
			count++
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("ok: %d checked\n", count)
}
