//! Majority arithmetic, pure functions over the voters' numbers.

/// The outcome of an election so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Not yet decided: some voters have not answered.
    Pending,
    Lost,
    Won,
}

pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The largest index that a majority of `matched` has reached. `scratch` is reused to avoid
/// an allocation per acknowledgement. An empty configuration commits everything (u64::MAX).
pub fn committed_index(matched: impl Iterator<Item = u64>, scratch: &mut Vec<u64>) -> u64 {
    scratch.clear();
    scratch.extend(matched);
    if scratch.is_empty() {
        return u64::MAX;
    }
    scratch.sort_unstable_by(|a, b| b.cmp(a));
    scratch[majority(scratch.len()) - 1]
}

/// Tallies `granted` and `rejected` votes out of `voters`.
pub fn vote_result(voters: usize, granted: usize, rejected: usize) -> VoteResult {
    let q = majority(voters);
    if granted >= q {
        VoteResult::Won
    } else if voters - rejected < q {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_index_is_the_majoritys_lowest() {
        let mut s = Vec::new();
        assert_eq!(committed_index([5].into_iter(), &mut s), 5);
        assert_eq!(committed_index([5, 3].into_iter(), &mut s), 3);
        assert_eq!(committed_index([5, 3, 1].into_iter(), &mut s), 3);
        assert_eq!(committed_index([1, 5, 3, 4].into_iter(), &mut s), 3);
        assert_eq!(committed_index([1, 5, 3, 4, 2].into_iter(), &mut s), 3);
        assert_eq!(committed_index([].into_iter(), &mut s), u64::MAX);
    }

    #[test]
    fn vote_result_decides_only_when_certain() {
        assert_eq!(vote_result(1, 1, 0), VoteResult::Won);
        assert_eq!(vote_result(3, 1, 0), VoteResult::Pending);
        assert_eq!(vote_result(3, 2, 0), VoteResult::Won);
        assert_eq!(vote_result(3, 1, 2), VoteResult::Lost);
        assert_eq!(vote_result(4, 2, 1), VoteResult::Pending);
        assert_eq!(vote_result(4, 2, 2), VoteResult::Lost);
        assert_eq!(vote_result(5, 3, 2), VoteResult::Won);
    }
}
