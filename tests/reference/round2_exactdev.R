# glmer's Laplace / AGQ deviance, recomputed with fully converged inner iterations.
# Sourced by round2_hessian.R.
#
# glmer's own devfun stops PIRLS on a relative change of the penalized weighted RSS
# (tolPwrss): the modes are then accurate only to about sqrt(tolPwrss), and the
# log-determinant uses the weights of the previous iteration, so the deviance carries
# noise of 1e-9 to 1e-7 that finite-difference Hessians amplify. This function
# evaluates the same objective from the fit's own pieces (X, Zt, Lambdat, Lind, y,
# prior weights, offset, family), iterating the PIRLS (Fisher scoring) update for the
# spherical random effects u until max|du| < 1e-13 and computing every term at the
# final u:
#   Laplace: family$aic(y, n, mu, wt, sum(dev.resids)) + |u|^2 + log det(Lt Z' W Z L + I)
#   AGQ (one scalar term): sum over groups of -2 log( s_j sum_k w_k exp(-(d_j(u_k) + u_k^2)/2
#     + z_k^2/2) ), u_k = u_j + s_j z_k, s_j = A_jj^(-1/2), (z_k, w_k) = GHrule(nAGQ),
#     d_j = the group's summed deviance residuals (glmer's AGQ criterion differs from this
#     by a constant, see check_exact_dev).
# W holds glmer's PIRLS weights wt * mu.eta^2 / variance(mu) (expected information): for
# non-canonical links this is not glmmTMB's Laplace approximation (observed information).

make_exact_dev <- function(fit) {
  Zt <- getME(fit, "Zt"); X <- getME(fit, "X")
  Lambdat <- getME(fit, "Lambdat"); Lind <- getME(fit, "Lind")
  y <- fit@resp$y; wt <- fit@resp$weights; nn <- fit@resp$n; off <- fit@resp$offset
  fam <- family(fit)
  nth <- length(getME(fit, "theta")); q <- nrow(Zt)
  nAGQ <- fit@devcomp$dims[["nAGQ"]]
  if (nAGQ > 1 && length(getME(fit, "flist")) != 1) stop("AGQ needs a single grouping factor")
  u_warm <- rep(0, q)
  state <- function(par) {
    theta <- par[seq_len(nth)]; beta <- par[-seq_len(nth)]
    Lt <- Lambdat; Lt@x <- theta[Lind]
    LZ <- Lt %*% Zt
    eta0 <- as.vector(X %*% beta) + off
    pdev <- function(u) {
      mu <- fam$linkinv(eta0 + as.vector(crossprod(LZ, u)))
      sum(fam$dev.resids(y, mu, wt)) + sum(u^2)
    }
    u <- u_warm
    if (!is.finite(pdev(u))) u <- rep(0, q)
    old <- pdev(u)
    for (it in 1:1000) {
      eta <- eta0 + as.vector(crossprod(LZ, u))
      mu <- fam$linkinv(eta); me <- fam$mu.eta(eta)
      w <- wt * me^2 / fam$variance(mu)
      A <- tcrossprod(LZ %*% Diagonal(x = sqrt(w))) + Diagonal(q)
      z <- (eta - eta0) + (y - mu) / me
      unew <- as.vector(solve(A, as.vector(LZ %*% (w * z))))
      step <- 1
      new <- pdev(u + step * (unew - u))
      while (!(is.finite(new) && new <= old + 1e-10 * abs(old)) && step > 1e-6) {
        step <- step / 2
        new <- pdev(u + step * (unew - u))
      }
      du <- step * (unew - u)
      u <- u + du; old <- new
      if (max(abs(du)) < 1e-13 * (1 + max(abs(u)))) break
    }
    if (max(abs(du)) >= 1e-10 * (1 + max(abs(u)))) stop("inner iterations did not converge")
    u_warm <<- u
    eta <- eta0 + as.vector(crossprod(LZ, u))
    mu <- fam$linkinv(eta); me <- fam$mu.eta(eta)
    w <- wt * me^2 / fam$variance(mu)
    A <- tcrossprod(LZ %*% Diagonal(x = sqrt(w))) + Diagonal(q)
    list(u = u, mu = mu, A = A, LZ = LZ, eta0 = eta0, iterations = it)
  }
  laplace <- function(par) {
    s <- state(par)
    dev <- sum(fam$dev.resids(y, s$mu, wt))
    fam$aic(y, nn, s$mu, wt, dev) + sum(s$u^2) +
      as.numeric(determinant(s$A, logarithm = TRUE)$modulus)
  }
  agq <- function(par) {
    s <- state(par)
    grp <- as.integer(getME(fit, "flist")[[1]])
    sj <- 1 / sqrt(diag(s$A))
    gh <- GHrule(nAGQ)
    lterms <- matrix(0, q, nrow(gh))
    lz <- as.vector(s$LZ %*% rep(1, length(y)))      # scalar term: Lambda_jj * z_i
    for (k in seq_len(nrow(gh))) {
      uk <- s$u + sj * gh[k, "z"]
      mu <- fam$linkinv(s$eta0 + as.vector(crossprod(s$LZ, uk)))
      dj <- as.vector(rowsum(fam$dev.resids(y, mu, wt), grp))
      lterms[, k] <- log(gh[k, "w"]) - (dj + uk^2) / 2 + gh[k, "z"]^2 / 2
    }
    mx <- apply(lterms, 1, max)
    sum(-2 * (log(sj) + mx + log(rowSums(exp(lterms - mx)))))
  }
  if (nAGQ > 1) agq else laplace
}

# glmer devfun (tolPwrss=1e-13) minus exact deviance at two parameter vectors: equal
# (Laplace) or differing by the same constant (AGQ) when the two compute one objective
check_exact_dev <- function(fit, dfun, exact) {
  p1 <- c(getME(fit, "theta"), fixef(fit))
  p2 <- c(getME(fit, "theta") * 0.9 + 0.05, fixef(fit) * 0.95)
  c(dfun(p1) - exact(p1), dfun(p2) - exact(p2))
}

exactdev_hessian <- function(case, fit) {
  exact <- make_exact_dev(fit)
  dfun <- update(fit, devFunOnly = TRUE,
                 control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-13,
                                        optCtrl = list(maxfun = 1e5)))
  chk <- check_exact_dev(fit, dfun, exact)
  par <- c(getME(fit, "theta"), fixef(fit))
  np <- length(par)
  hess_of <- function(D) {
    H <- matrix(0, np, np); k <- np
    for (i in 1:np) for (j in 1:i) { k <- k + 1; H[i, j] <- H[j, i] <- D[k] }
    H
  }
  margs <- function(d) list(eps = 1e-4, d = d, zero.tol = sqrt(.Machine$double.eps / 7e-7),
                            r = 4, v = 2)
  for (k in 1:4) {
    D <- genD(exact, par, method.args = margs(0.1))$D
    g <- D[1:np]
    if (max(abs(g)) < 1e-8) break
    par <- par - solve(hess_of(D), g)
  }
  D <- genD(exact, par, method.args = margs(0.1))$D
  D2 <- genD(exact, par, method.args = margs(0.02))$D
  H <- hess_of(D) / 2; H2 <- hess_of(D2) / 2        # Hessian of deviance / 2
  nth <- length(getME(fit, "theta"))
  ib <- (nth + 1):np
  list(method = paste("numDeriv::genD (Richardson, d=0.1, r=4; alt d=0.02) of glmer's",
                      "Laplace/AGQ deviance recomputed with PIRLS converged to",
                      "max|du| < 1e-13 (round2_exactdev.R), Newton-polished optimum"),
       devfun_minus_exact = V(chk),
       par_names = V(c(paste0("theta", seq_len(nth)), names(fixef(fit)))),
       par = V(par), fixef = V(par[ib]),
       se_exact = V(sqrt(diag(solve(H)))[ib]), se_exact_alt = V(sqrt(diag(solve(H2)))[ib]),
       criterion_exact = exact(par), criterion_glmer_devfun = dfun(par),
       grad_max_abs = max(abs(D[1:np])), hessian_half_deviance = M(H))
}
