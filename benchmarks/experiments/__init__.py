"""Experiments that measure the library: each a module with a command line, kept apart from
the library it measures.

| module | measures |
|---|---|
| :mod:`.student_speed` | a meta-step of each path and learner against the plain reference, GFLOP/s |
| :mod:`.population_speed` | a population's meta-step against one student's |
| :mod:`.revision_speed` | whole benchmark runs of two revisions of the project, alternated |
| :mod:`.learning_speed` | each learner's accuracy on unseen tasks after a number of meta-steps |
| :mod:`.family_difficulty` | what each parameter of a task family does to the student |
| :mod:`.measure_reduced` | the teachers' statistics on the real student at the reduced settings |
| :mod:`.alp_gmm_analytic` | ALP-GMM on the analytic multi-dimensional student |
| :mod:`.sigterm` | how fast ``bench`` stops on SIGTERM, per executor |
| :mod:`.profile_student` | where a student's time goes: phases and ops |
| :mod:`.report_card` | every teacher on every analytic profile: which wins where |
| :mod:`.calibrate_analytic` | the fit of the calibrated analytic profile to real runs |
| :mod:`.sb3_teachers` | SB3 policies trained as teachers, beside the hand-made ones |
| :mod:`.gpu_session` | the CUDA tests, the population speed table and ``--preset paper`` in 10-minute GPU slices (with :mod:`.gpu_carry`, what travels) |

Run one as ``python -m metacurriculum.benchmarks.experiments.<module> --help``.
"""
