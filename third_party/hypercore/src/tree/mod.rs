mod merkle_tree;
mod merkle_tree_changeset;

pub(crate) use merkle_tree::MerkleTree;
pub(crate) use merkle_tree_changeset::MerkleTreeChangeset;
