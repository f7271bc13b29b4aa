#!/usr/bin/env python3
"""Reference answer for schema/demo/queries/nested.json, made without a gateway.

Runs the query plan by hand against the four demo subgraphs (7 fetches, the same a federation
gateway needs) and prints the merged response as compact JSON. scripts/load.sh compares a
gateway's answer with it, and it gives the response size independent of any gateway.

Usage: nested_reference.py ACCOUNTS_URL PRODUCTS_URL INVENTORY_URL REVIEWS_URL
"""
import json
import sys
import urllib.request


def fetch(url, query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        out = json.load(resp)
    if out.get("errors"):
        sys.exit(f"subgraph error from {url}: {out['errors']}")
    return out["data"]


def entities(url, typename, reps, selection):
    query = ("query($r: [_Any!]!) { _entities(representations: $r) { ... on %s { %s } } }"
             % (typename, selection))
    return fetch(url, query, {"r": [dict(r, __typename=typename) for r in reps]})["_entities"]


def main():
    accounts, products, inventory, reviews = sys.argv[1:5]
    # Fetches 1 and 2 (parallel in a gateway): the root fields.
    me = fetch(accounts, "{ me { id name username } }")["me"]
    top = fetch(products, "{ topProducts(first: 5) { upc name price weight category } }")["topProducts"]
    # 3: inventory needs price and weight (@requires) for shippingEstimate.
    stock = entities(inventory, "Product",
                     [{"upc": p["upc"], "price": p["price"], "weight": p["weight"]} for p in top],
                     "inStock shippingEstimate")
    # 4: reviews; author.username comes from reviews itself (@provides).
    revs = entities(reviews, "Product", [{"upc": p["upc"]} for p in top],
                    "reviews { id body rating author { id username reviews { id body rating product { upc } } } }")
    # 5: accounts for author names; 6: products for the inner products; 7: inventory again.
    authors = {r["author"]["id"] for e in revs for r in e["reviews"]}
    names = dict(zip(sorted(authors), entities(accounts, "User", [{"id": i} for i in sorted(authors)], "name")))
    inner = sorted({ir["product"]["upc"] for e in revs for r in e["reviews"] for ir in r["author"]["reviews"]})
    inner_products = dict(zip(inner, entities(products, "Product", [{"upc": u} for u in inner], "name price weight")))
    inner_ship = dict(zip(inner, entities(
        inventory, "Product",
        [{"upc": u, "price": inner_products[u]["price"], "weight": inner_products[u]["weight"]} for u in inner],
        "shippingEstimate")))

    out = []
    for p, s, e in zip(top, stock, revs):
        product_reviews = []
        for r in e["reviews"]:
            a = r["author"]
            product_reviews.append({
                "id": r["id"], "body": r["body"], "rating": r["rating"],
                "author": {
                    "id": a["id"], "name": names[a["id"]]["name"], "username": a["username"],
                    "reviews": [{
                        "id": ir["id"], "body": ir["body"], "rating": ir["rating"],
                        "product": {
                            "upc": ir["product"]["upc"],
                            "name": inner_products[ir["product"]["upc"]]["name"],
                            "price": inner_products[ir["product"]["upc"]]["price"],
                            "shippingEstimate": inner_ship[ir["product"]["upc"]]["shippingEstimate"],
                        },
                    } for ir in a["reviews"]],
                },
            })
        out.append({
            "upc": p["upc"], "name": p["name"], "price": p["price"], "weight": p["weight"],
            "category": p["category"], "inStock": s["inStock"],
            "shippingEstimate": s["shippingEstimate"], "reviews": product_reviews,
        })
    sys.stdout.write(json.dumps({"data": {"me": me, "topProducts": out}}, separators=(",", ":")))


if __name__ == "__main__":
    main()
