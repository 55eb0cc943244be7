//! Admin GraphQL client.
