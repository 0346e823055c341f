CREATE TABLE "sqlgrad_golden_state" AS
SELECT
  CAST(0 AS BIGINT) AS "iteration",
  CAST(NULL AS DOUBLE) AS "loss",
  -CAST(0.00569693 AS DOUBLE) AS "w1_0_0",
  CAST(0.00186517 AS DOUBLE) AS "w1_0_1",
  CAST(0.00414431 AS DOUBLE) AS "w1_1_0",
  CAST(0.0105101 AS DOUBLE) AS "w1_1_1",
  CAST(0 AS DOUBLE) AS "b1_0",
  CAST(0 AS DOUBLE) AS "b1_1",
  -CAST(0.01312284 AS DOUBLE) AS "w2_0_0",
  -CAST(0.01269512 AS DOUBLE) AS "w2_0_1",
  CAST(0.00379152 AS DOUBLE) AS "w2_1_0",
  -CAST(0.01218354 AS DOUBLE) AS "w2_1_1",
  CAST(0 AS DOUBLE) AS "b2_0",
  CAST(0 AS DOUBLE) AS "b2_1";

INSERT INTO "sqlgrad_golden_state"
SELECT
  "p"."iteration" + 1 AS "iteration",
  (
    CAST("g"."loss_sum" AS DOUBLE) / "g"."n"
  ) + (
    CAST(0.5 AS DOUBLE) * CAST(0.001 AS DOUBLE) * (
      "p"."w1_0_0" * "p"."w1_0_0" + "p"."w1_0_1" * "p"."w1_0_1" + "p"."w1_1_0" * "p"."w1_1_0" + "p"."w1_1_1" * "p"."w1_1_1" + "p"."w2_0_0" * "p"."w2_0_0" + "p"."w2_0_1" * "p"."w2_0_1" + "p"."w2_1_0" * "p"."w2_1_0" + "p"."w2_1_1" * "p"."w2_1_1"
    )
  ) AS "loss",
  "p"."w1_0_0" - 2 * (
    CAST("g"."d_w1_0_0" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w1_0_0"
  ) AS "w1_0_0",
  "p"."w1_0_1" - 2 * (
    CAST("g"."d_w1_0_1" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w1_0_1"
  ) AS "w1_0_1",
  "p"."w1_1_0" - 2 * (
    CAST("g"."d_w1_1_0" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w1_1_0"
  ) AS "w1_1_0",
  "p"."w1_1_1" - 2 * (
    CAST("g"."d_w1_1_1" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w1_1_1"
  ) AS "w1_1_1",
  "p"."b1_0" - 2 * (
    CAST("g"."d_b1_0" AS DOUBLE) / "g"."n"
  ) AS "b1_0",
  "p"."b1_1" - 2 * (
    CAST("g"."d_b1_1" AS DOUBLE) / "g"."n"
  ) AS "b1_1",
  "p"."w2_0_0" - 2 * (
    CAST("g"."d_w2_0_0" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w2_0_0"
  ) AS "w2_0_0",
  "p"."w2_0_1" - 2 * (
    CAST("g"."d_w2_0_1" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w2_0_1"
  ) AS "w2_0_1",
  "p"."w2_1_0" - 2 * (
    CAST("g"."d_w2_1_0" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w2_1_0"
  ) AS "w2_1_0",
  "p"."w2_1_1" - 2 * (
    CAST("g"."d_w2_1_1" AS DOUBLE) / "g"."n" + CAST(0.001 AS DOUBLE) * "p"."w2_1_1"
  ) AS "w2_1_1",
  "p"."b2_0" - 2 * (
    CAST("g"."d_b2_0" AS DOUBLE) / "g"."n"
  ) AS "b2_0",
  "p"."b2_1" - 2 * (
    CAST("g"."d_b2_1" AS DOUBLE) / "g"."n"
  ) AS "b2_1"
FROM "sqlgrad_golden_state" AS "p"
CROSS JOIN (
  SELECT
    SUM("lse" - CASE WHEN "y" = 0 THEN "z2_0" WHEN "y" = 1 THEN "z2_1" END) AS "loss_sum",
    CAST(COUNT(*) AS DOUBLE) AS "n",
    SUM("x_0" * "dz1_0") AS "d_w1_0_0",
    SUM("x_0" * "dz1_1") AS "d_w1_0_1",
    SUM("x_1" * "dz1_0") AS "d_w1_1_0",
    SUM("x_1" * "dz1_1") AS "d_w1_1_1",
    SUM("dz1_0") AS "d_b1_0",
    SUM("dz1_1") AS "d_b1_1",
    SUM("a1_0" * "dz2_0") AS "d_w2_0_0",
    SUM("a1_0" * "dz2_1") AS "d_w2_0_1",
    SUM("a1_1" * "dz2_0") AS "d_w2_1_0",
    SUM("a1_1" * "dz2_1") AS "d_w2_1_1",
    SUM("dz2_0") AS "d_b2_0",
    SUM("dz2_1") AS "d_b2_1"
  FROM (
    SELECT
      "x_0",
      "x_1",
      "a1_0",
      "a1_1",
      "z2_0",
      "z2_1",
      "lse",
      "y",
      "dz2_0",
      "dz2_1",
      CASE WHEN "z1_0" > 0 THEN "dz2_0" * "w2_0_0" + "dz2_1" * "w2_0_1" ELSE 0 END AS "dz1_0",
      CASE WHEN "z1_1" > 0 THEN "dz2_0" * "w2_1_0" + "dz2_1" * "w2_1_1" ELSE 0 END AS "dz1_1"
    FROM (
      SELECT
        "x_0",
        "x_1",
        "z1_0",
        "z1_1",
        "a1_0",
        "a1_1",
        "w2_0_0",
        "w2_0_1",
        "w2_1_0",
        "w2_1_1",
        "z2_0",
        "z2_1",
        "lse",
        "y",
        EXP("z2_0" - "lse") - CASE WHEN "y" = 0 THEN 1 ELSE 0 END AS "dz2_0",
        EXP("z2_1" - "lse") - CASE WHEN "y" = 1 THEN 1 ELSE 0 END AS "dz2_1"
      FROM (
        SELECT
          "x_0",
          "x_1",
          "z1_0",
          "z1_1",
          "a1_0",
          "a1_1",
          "w2_0_0",
          "w2_0_1",
          "w2_1_0",
          "w2_1_1",
          "z2_0",
          "z2_1",
          "y",
          "zmax" + LN(EXP("z2_0" - "zmax") + EXP("z2_1" - "zmax")) AS "lse"
        FROM (
          SELECT
            "x_0",
            "x_1",
            "z1_0",
            "z1_1",
            "a1_0",
            "a1_1",
            "w2_0_0",
            "w2_0_1",
            "w2_1_0",
            "w2_1_1",
            "z2_0",
            "z2_1",
            "y",
            GREATEST("z2_0", "z2_1") AS "zmax"
          FROM (
            SELECT
              "x_0",
              "x_1",
              "z1_0",
              "z1_1",
              "a1_0",
              "a1_1",
              "w2_0_0",
              "w2_0_1",
              "w2_1_0",
              "w2_1_1",
              "y",
              (
                "a1_0" * "w2_0_0" + "a1_1" * "w2_1_0"
              ) + "b2_0" AS "z2_0",
              (
                "a1_0" * "w2_0_1" + "a1_1" * "w2_1_1"
              ) + "b2_1" AS "z2_1"
            FROM (
              SELECT
                "x_0",
                "x_1",
                "z1_0",
                "z1_1",
                "w2_0_0",
                "w2_0_1",
                "w2_1_0",
                "w2_1_1",
                "b2_0",
                "b2_1",
                "y",
                CASE WHEN "z1_0" > 0 THEN "z1_0" ELSE 0 END AS "a1_0",
                CASE WHEN "z1_1" > 0 THEN "z1_1" ELSE 0 END AS "a1_1"
              FROM (
                SELECT
                  "x_0",
                  "x_1",
                  "w2_0_0",
                  "w2_0_1",
                  "w2_1_0",
                  "w2_1_1",
                  "b2_0",
                  "b2_1",
                  "y",
                  (
                    "x_0" * "w1_0_0" + "x_1" * "w1_1_0"
                  ) + "b1_0" AS "z1_0",
                  (
                    "x_0" * "w1_0_1" + "x_1" * "w1_1_1"
                  ) + "b1_1" AS "z1_1"
                FROM (
                  SELECT
                    "d"."x_0",
                    "d"."x_1",
                    "d"."y",
                    "q"."w1_0_0",
                    "q"."w1_0_1",
                    "q"."w1_1_0",
                    "q"."w1_1_1",
                    "q"."b1_0",
                    "q"."b1_1",
                    "q"."w2_0_0",
                    "q"."w2_0_1",
                    "q"."w2_1_0",
                    "q"."w2_1_1",
                    "q"."b2_0",
                    "q"."b2_1"
                  FROM "sqlgrad_golden_data" AS "d"
                  CROSS JOIN "sqlgrad_golden_state" AS "q"
                  WHERE
                    "q"."iteration" = 0
                ) AS s0
              ) AS s1
            ) AS s2
          ) AS s3
        ) AS s4
      ) AS s5
    ) AS s6
  ) AS s7
) AS "g"
WHERE
  "p"."iteration" = 0;
