//! The gateway's guards, in every subgraph: a subgraph is one misconfigured route away from
//! being called directly, and must not be the soft spot behind a hardened gateway.
//!
//! The limits are `switchyard_guard::RequestLimits::SUBGRAPH` — derived in `guard/` from the
//! gateway's, so that whatever the gateway accepts and plans still fits — unless the environment
//! overrides them (`SUBGRAPH_MAX_BODY_BYTES`, `SUBGRAPH_MAX_DEPTH`, `SUBGRAPH_MAX_ALIASES`,
//! `SUBGRAPH_MAX_FIELDS`, `SUBGRAPH_MAX_ROOT_FIELDS`, `SUBGRAPH_INTROSPECTION`; shared by
//! every service like `JWKS_URL`).
//!
//! Two places apply them:
//! - [`apply`], on each service's schema builder: an extension that, before validation, counts
//!   the operation with every fragment spread expanded (memoized per fragment, so a fragment
//!   bomb is measured in time linear in its text) and refuses it over the depth, alias, field
//!   or root-field limit, with the gateway's error codes; and introspection as configured. It
//!   covers every way in: HTTP, WebSocket, in-process.
//! - the kit's HTTP handler ([`crate::server`]): the body limit (413 `PAYLOAD_TOO_LARGE`), no
//!   JSON batching (400 `BAD_REQUEST`), and mutations over GET refused (405 with `Allow: POST`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensionValues, Positioned, Request, SchemaBuilder, ServerError, ServerResult,
};
use switchyard_guard::RequestLimits;

/// `extensions.code` for an operation nested deeper than the limit (as the gateway's).
pub const MAX_DEPTH_EXCEEDED: &str = "MAX_DEPTH_EXCEEDED";
/// `extensions.code` for too many aliased fields (as the gateway's).
pub const MAX_ALIASES_EXCEEDED: &str = "MAX_ALIASES_EXCEEDED";
/// `extensions.code` for too many fields (as the gateway's).
pub const MAX_FIELDS_EXCEEDED: &str = "MAX_FIELDS_EXCEEDED";
/// `extensions.code` for too many root fields (as the gateway's).
pub const MAX_ROOT_FIELDS_EXCEEDED: &str = "MAX_ROOT_FIELDS_EXCEEDED";
/// `extensions.code` for a body over the limit (as the gateway's).
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
/// `extensions.code` for `__schema` / `__type` with introspection off (as the gateway's).
pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
/// `extensions.code` for a request that is not one GraphQL request (as the gateway's).
pub const BAD_REQUEST: &str = "BAD_REQUEST";

/// Nesting the schema's own recursion check allows. async-graphql's parser already stops at 64
/// nested selection sets (fields and inline fragments); this only lifts the schema's default of
/// 32, which was below the gateway's depth, and the depth limit proper is [`Guards::limits`].
pub const RECURSIVE_DEPTH: usize = 256;

/// What a subgraph enforces on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guards {
    /// Body, depth, alias, field and root-field limits.
    pub limits: RequestLimits,
    /// Whether `__schema` / `__type` are answered.
    pub introspection: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            limits: RequestLimits::SUBGRAPH,
            introspection: true,
        }
    }
}

impl Guards {
    /// The defaults with the `SUBGRAPH_*` variables in `vars` applied.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Guards, String> {
        let mut guards = Guards::default();
        for (name, value) in vars {
            let Some(setting) = name.strip_prefix("SUBGRAPH_") else {
                continue;
            };
            let number = || {
                value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}={value:?}: expected a positive whole number"))
            };
            let limits = &mut guards.limits;
            match setting {
                "MAX_BODY_BYTES" => limits.max_body_bytes = number()?,
                "MAX_DEPTH" => limits.max_depth = number()?,
                "MAX_ALIASES" => limits.max_aliases = number()?,
                "MAX_FIELDS" => limits.max_fields = number()?,
                "MAX_ROOT_FIELDS" => limits.max_root_fields = number()?,
                "INTROSPECTION" => {
                    guards.introspection = match value.trim().to_ascii_lowercase().as_str() {
                        "1" | "true" | "yes" | "on" => true,
                        "0" | "false" | "no" | "off" => false,
                        _ => return Err(format!("{name}={value:?}: expected true or false")),
                    }
                }
                _ => {}
            }
        }
        Ok(guards)
    }

    /// This process's guards: the defaults with the `SUBGRAPH_*` environment variables applied,
    /// read once.
    ///
    /// # Panics
    /// When a variable is set to something that is not a valid value, naming it: a service must
    /// not start with guards other than the operator asked for.
    pub fn current() -> Guards {
        static CURRENT: OnceLock<Guards> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let guards = Guards::from_vars(std::env::vars())
                .unwrap_or_else(|e| panic!("invalid subgraph guard setting {e}"));
            if !guards.limits.covers(&RequestLimits::GATEWAY) {
                tracing::warn!(
                    ?guards,
                    "subgraph limits are below what the gateway's defaults can send"
                );
            }
            guards
        })
    }
}

/// Adds [`Guards::current`] to a service's schema (see the module docs). Call it on every
/// subgraph schema builder.
pub fn apply<Q, M, S>(builder: SchemaBuilder<Q, M, S>) -> SchemaBuilder<Q, M, S> {
    apply_with(builder, Guards::current())
}

/// Adds `guards` to a service's schema.
pub fn apply_with<Q, M, S>(
    builder: SchemaBuilder<Q, M, S>,
    guards: Guards,
) -> SchemaBuilder<Q, M, S> {
    builder
        .limit_recursive_depth(RECURSIVE_DEPTH)
        .extension(GuardExtension(guards))
}

struct GuardExtension(Guards);

impl ExtensionFactory for GuardExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension(self.0))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for GuardExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if !self.0.introspection {
            request = request.disable_introspection();
        }
        // Parsed here once; execution reuses the parsed document. A parse error is left for
        // execution to report as usual.
        if let Ok(document) = request.parsed_query() {
            check(document, &self.0.limits)?;
            if !self.0.introspection && asks_introspection(document) {
                return Err(coded(
                    "Introspection is disabled.".to_owned(),
                    INTROSPECTION_DISABLED,
                ));
            }
        }
        next.run(ctx, request).await
    }
}

/// An operation's size with every fragment spread expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Field selections, `__typename` included.
    pub fields: usize,
    /// Aliased field selections.
    pub aliases: usize,
    /// Deepest field nesting.
    pub depth: usize,
    /// Root fields.
    pub root_fields: usize,
}

impl Shape {
    /// The largest of each count over every operation of `document`. Fragment cycles count as
    /// empty (validation reports them).
    pub fn of(document: &ExecutableDocument) -> Shape {
        let mut walk = Walk {
            document,
            memo: HashMap::new(),
            root_memo: HashMap::new(),
        };
        let mut worst = Shape::default();
        for (_, operation) in document.operations.iter() {
            let set = &operation.node.selection_set;
            let shape = walk.set(set);
            let root = walk.root_fields(set);
            worst.fields = worst.fields.max(shape.fields);
            worst.aliases = worst.aliases.max(shape.aliases);
            worst.depth = worst.depth.max(shape.depth);
            worst.root_fields = worst.root_fields.max(root);
        }
        worst
    }
}

/// An error with `extensions.code`.
fn coded(message: String, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

/// Refuses `document` when its shape is over `limits`, with the gateway's codes and wording.
pub fn check(document: &ExecutableDocument, limits: &RequestLimits) -> ServerResult<()> {
    let shape = Shape::of(document);
    let over = |what: &str, count: usize, limit: usize, code: &str| {
        Err(coded(
            format!("Operation has {count} {what}, more than the limit of {limit}."),
            code,
        ))
    };
    if shape.depth > limits.max_depth {
        return Err(coded(
            format!(
                "Operation is nested {} levels deep, more than the limit of {}.",
                shape.depth, limits.max_depth
            ),
            MAX_DEPTH_EXCEEDED,
        ));
    }
    if shape.root_fields > limits.max_root_fields {
        return over(
            "root fields",
            shape.root_fields,
            limits.max_root_fields,
            MAX_ROOT_FIELDS_EXCEEDED,
        );
    }
    if shape.aliases > limits.max_aliases {
        return over(
            "aliased fields",
            shape.aliases,
            limits.max_aliases,
            MAX_ALIASES_EXCEEDED,
        );
    }
    if shape.fields > limits.max_fields {
        return over(
            "fields (fragments expanded)",
            shape.fields,
            limits.max_fields,
            MAX_FIELDS_EXCEEDED,
        );
    }
    Ok(())
}

/// Whether any operation of `document` selects `__schema` or `__type` at its root (async-graphql
/// alone would answer them with a silent null).
fn asks_introspection(document: &ExecutableDocument) -> bool {
    fn in_set(document: &ExecutableDocument, set: &SelectionSet, seen: &mut Vec<String>) -> bool {
        set.items.iter().any(|selection| match &selection.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type")
            }
            Selection::InlineFragment(inline) => {
                in_set(document, &inline.node.selection_set.node, seen)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if seen.iter().any(|s| s == name) {
                    return false;
                }
                seen.push(name.to_owned());
                document
                    .fragments
                    .get(name)
                    .is_some_and(|f| in_set(document, &f.node.selection_set.node, seen))
            }
        })
    }
    let mut seen = Vec::new();
    document
        .operations
        .iter()
        .any(|(_, op)| in_set(document, &op.node.selection_set.node, &mut seen))
}

/// Whether the operation `request` would run is a mutation (for refusing them over GET).
pub fn is_mutation(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let mut operations = document.operations.iter();
    let operation = match operation_name {
        Some(name) => operations.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => operations.next(),
    };
    operation.is_some_and(|(_, op)| op.node.ty == OperationType::Mutation)
}

struct Walk<'d> {
    document: &'d ExecutableDocument,
    /// `None` while a fragment is being measured: a spread of it then is a cycle.
    memo: HashMap<&'d str, Option<Shape>>,
    /// The same for root-field counts.
    root_memo: HashMap<&'d str, Option<usize>>,
}

impl<'d> Walk<'d> {
    fn set(&mut self, set: &'d Positioned<SelectionSet>) -> Shape {
        let mut total = Shape::default();
        for selection in &set.node.items {
            let shape = match &selection.node {
                Selection::Field(field) => {
                    let inner = self.set(&field.node.selection_set);
                    Shape {
                        fields: inner.fields.saturating_add(1),
                        aliases: inner
                            .aliases
                            .saturating_add(usize::from(field.node.alias.is_some())),
                        depth: inner.depth + 1,
                        root_fields: 0,
                    }
                }
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            };
            total.fields = total.fields.saturating_add(shape.fields);
            total.aliases = total.aliases.saturating_add(shape.aliases);
            total.depth = total.depth.max(shape.depth);
        }
        total
    }

    fn fragment(&mut self, name: &'d str) -> Shape {
        match self.memo.get(name) {
            Some(Some(shape)) => return *shape,
            Some(None) => return Shape::default(),
            None => {}
        }
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else {
            return Shape::default();
        };
        let key = key.as_str();
        self.memo.insert(key, None);
        let shape = self.set(&fragment.node.selection_set);
        self.memo.insert(key, Some(shape));
        shape
    }

    /// Root fields, counting through fragments spread at the root (memoized like [`Walk::set`]).
    fn root_fields(&mut self, set: &'d Positioned<SelectionSet>) -> usize {
        let mut count = 0usize;
        for selection in &set.node.items {
            count = count.saturating_add(match &selection.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(inline) => self.root_fields(&inline.node.selection_set),
                Selection::FragmentSpread(spread) => {
                    self.root_fragment(spread.node.fragment_name.node.as_str())
                }
            });
        }
        count
    }

    fn root_fragment(&mut self, name: &'d str) -> usize {
        match self.root_memo.get(name) {
            Some(Some(count)) => return *count,
            Some(None) => return 0,
            None => {}
        }
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else {
            return 0;
        };
        let key = key.as_str();
        self.root_memo.insert(key, None);
        let count = self.root_fields(&fragment.node.selection_set);
        self.root_memo.insert(key, Some(count));
        count
    }
}
