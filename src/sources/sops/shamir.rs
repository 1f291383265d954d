//! Shamir secret sharing over GF(2^8) as sops uses it (HashiCorp's scheme):
//! each share is the polynomial values for every secret byte followed by one
//! byte, the share's x coordinate. Only recombination is needed here.

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (the AES field),
/// without secret-dependent branches.
fn mult(a: u8, b: u8) -> u8 {
    let mut acc: u8 = 0;
    for i in (0..8).rev() {
        let bit = (b >> i) & 1;
        let a_or_zero = bit.wrapping_neg() & a;
        let reduce = (acc >> 7).wrapping_neg() & 0x1B;
        acc = a_or_zero ^ (reduce ^ acc.wrapping_add(acc));
    }
    acc
}

/// a^254, the inverse of a (0 for 0).
fn inverse(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u32;
    while e > 0 {
        if e & 1 == 1 {
            result = mult(result, base);
        }
        base = mult(base, base);
        e >>= 1;
    }
    result
}

/// Recombines the secret from `parts` (at least the threshold many).
/// Err names what is wrong with the shares, never their content.
pub fn combine(parts: &[&[u8]]) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    if parts.len() < 2 {
        return Err("fewer than two Shamir shares".into());
    }
    let len = parts[0].len();
    if len < 2 || parts.iter().any(|p| p.len() != len) {
        return Err("Shamir shares of different or too short lengths".into());
    }
    let xs: Vec<u8> = parts.iter().map(|p| p[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) || *x == 0 {
            return Err("duplicate or invalid Shamir share".into());
        }
    }
    let mut secret = zeroize::Zeroizing::new(vec![0u8; len - 1]);
    for (idx, out) in secret.iter_mut().enumerate() {
        // Lagrange interpolation at x = 0; subtraction is XOR in GF(2^8).
        let mut value = 0u8;
        for (i, part) in parts.iter().enumerate() {
            let mut basis = 1u8;
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mult(basis, mult(*xj, inverse(xs[i] ^ xj)));
                }
            }
            value ^= mult(part[idx], basis);
        }
        *out = value;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates a polynomial (coefficients lowest first) at x.
    fn eval(coeffs: &[u8], x: u8) -> u8 {
        coeffs.iter().rev().fold(0, |acc, c| mult(acc, x) ^ c)
    }

    #[test]
    fn field_inverse() {
        for a in 1..=255u8 {
            assert_eq!(mult(a, inverse(a)), 1, "a = {a}");
        }
    }

    #[test]
    fn recombines_any_threshold_subset() {
        let secret = [7u8, 0, 255, 42];
        // Degree-1 polynomials (threshold 2), fixed "random" slopes.
        let slopes = [3u8, 99, 1, 200];
        let share = |x: u8| -> Vec<u8> {
            let mut s: Vec<u8> = secret.iter().zip(slopes).map(|(&c, m)| eval(&[c, m], x)).collect();
            s.push(x);
            s
        };
        let (a, b, c) = (share(1), share(2), share(3));
        for set in
            [vec![&a[..], &b[..]], vec![&b[..], &c[..]], vec![&a[..], &c[..]], vec![&a[..], &b[..], &c[..]]]
        {
            assert_eq!(&combine(&set).unwrap()[..], &secret[..]);
        }
        assert!(combine(&[&a[..], &a[..]]).is_err());
    }
}
