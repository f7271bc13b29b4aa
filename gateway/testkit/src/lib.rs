//! Test support: async-graphql subgraphs built from a supergraph's join directives and served from
//! JSON fixtures, plus the federation case-file format.
