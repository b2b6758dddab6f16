import { Page } from '../components/ui';
// Built in the next commits.
export function PredictPage(_props: Record<string, string>) { return <Page title="PredictPage"><p>Not built yet.</p></Page>; }
